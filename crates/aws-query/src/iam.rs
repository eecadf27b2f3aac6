//! Typed IAM requests and the parts of their answers callers read.

use roxmltree::Node;

use crate::xml::{children, text};
use crate::Request;

/// `ListRoles`: the roles under a path prefix (the first page: up to 100 roles).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRoles {
    /// Only roles whose path starts with this (`/lab/NAME/`); all roles when `None`.
    pub path_prefix: Option<String>,
}

/// `ListInstanceProfiles`: the instance profiles under a path prefix (the first page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListInstanceProfiles {
    /// Only profiles whose path starts with this; all profiles when `None`.
    pub path_prefix: Option<String>,
}

/// A role or instance profile of a list answer: its name and path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Member {
    /// `RoleName` or `InstanceProfileName`.
    pub name: String,
    /// `Path` (`/lab/NAME/`).
    pub path: String,
}

impl Request for ListRoles {
    const ACTION: &'static str = "ListRoles";
    const RESPONSE: &'static str = "ListRolesResponse";
    type Output = Vec<Member>;

    fn params(&self) -> Vec<(String, String)> {
        path_prefix(&self.path_prefix)
    }

    fn read(root: Node<'_, '_>) -> Vec<Member> {
        members(root, "ListRolesResult", "Roles", "RoleName")
    }
}

impl Request for ListInstanceProfiles {
    const ACTION: &'static str = "ListInstanceProfiles";
    const RESPONSE: &'static str = "ListInstanceProfilesResponse";
    type Output = Vec<Member>;

    fn params(&self) -> Vec<(String, String)> {
        path_prefix(&self.path_prefix)
    }

    fn read(root: Node<'_, '_>) -> Vec<Member> {
        members(
            root,
            "ListInstanceProfilesResult",
            "InstanceProfiles",
            "InstanceProfileName",
        )
    }
}

fn path_prefix(prefix: &Option<String>) -> Vec<(String, String)> {
    prefix
        .iter()
        .map(|p| ("PathPrefix".to_owned(), p.clone()))
        .collect()
}

/// `RESULT/LIST/member/{NAME, Path}`; the roles nested inside an instance profile are not
/// members of the list.
fn members(root: Node<'_, '_>, result: &'static str, list: &'static str, name: &'static str) -> Vec<Member> {
    children(root, result)
        .flat_map(|r| children(r, list))
        .flat_map(|l| children(l, "member"))
        .map(|member| Member {
            name: text(member, name).unwrap_or_default(),
            path: text(member, "Path").unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_profiles_list_their_own_names_not_their_roles() {
        let xml = r#"<ListInstanceProfilesResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">
  <ListInstanceProfilesResult>
    <IsTruncated>false</IsTruncated>
    <InstanceProfiles>
      <member>
        <InstanceProfileName>lab-a-node</InstanceProfileName>
        <Path>/lab/a/</Path>
        <Roles><member><RoleName>lab-a-role</RoleName><Path>/lab/a/</Path></member></Roles>
      </member>
      <member><InstanceProfileName>other</InstanceProfileName><Path>/</Path></member>
    </InstanceProfiles>
  </ListInstanceProfilesResult>
</ListInstanceProfilesResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        assert_eq!(
            ListInstanceProfiles::read(doc.root_element()),
            [
                Member {
                    name: "lab-a-node".into(),
                    path: "/lab/a/".into()
                },
                Member {
                    name: "other".into(),
                    path: "/".into()
                },
            ]
        );
    }

    #[test]
    fn roles_and_the_path_prefix() {
        let xml = r#"<ListRolesResponse><ListRolesResult><Roles>
            <member><RoleName>r1</RoleName><Path>/lab/a/</Path></member>
        </Roles></ListRolesResult></ListRolesResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        assert_eq!(
            ListRoles::read(doc.root_element()),
            [Member {
                name: "r1".into(),
                path: "/lab/a/".into()
            }]
        );
        let request = ListRoles {
            path_prefix: Some("/lab/a/".into()),
        };
        assert_eq!(
            request.params(),
            [("PathPrefix".to_owned(), "/lab/a/".to_owned())]
        );
        assert!(ListRoles::default().params().is_empty());
    }
}
