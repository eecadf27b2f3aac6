//! What the two AWS-backed providers (localstack, aws) share: reading Query-API XML,
//! telling "already gone" from real failures, and creating and retiring a KMS key.

use aws_query::{QueryClient, QueryError};
use aws_sdk_kms::error::DisplayErrorContext;

/// The shortest waiting period KMS allows before a key is deleted.
pub const KEY_DELETION_DAYS: i32 = 7;

/// A current-thread runtime for one command's cloud calls (providers are synchronous).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// One EC2 or IAM call; a failure comes back as the call's `Action` and what the API or the
/// transport said, for the provider to word as its own error.
pub async fn query(client: &QueryClient, params: &[(&str, &str)]) -> Result<String, (String, String)> {
    let action = params
        .iter()
        .find(|(k, _)| *k == "Action")
        .map_or("call", |(_, v)| *v);
    client
        .call(params)
        .await
        .map_err(|e| (action.to_owned(), e.to_string()))
}

/// The text of the first element named `name`.
pub fn xml_text(xml: &str, name: &str) -> Result<String, String> {
    xml_texts(xml, name)
        .into_iter()
        .next()
        .ok_or_else(|| format!("no <{name}> in the answer"))
}

/// The texts of every element named `name` (empty when the XML does not parse).
pub fn xml_texts(xml: &str, name: &str) -> Vec<String> {
    let Ok(doc) = roxmltree::Document::parse(xml) else {
        return Vec::new();
    };
    doc.descendants()
        .filter(|n| n.tag_name().name() == name)
        .filter_map(|n| n.text().map(str::to_owned))
        .collect()
}

/// The error of a delete call, unless it only says the resource is already gone (EC2's
/// `*.NotFound`, IAM's `NoSuchEntity`).
pub fn real_error(result: Result<String, QueryError>) -> Option<QueryError> {
    result.err().filter(|e| !e.is_not_found())
}

/// Creates a KMS key (tagged with `tag` when given) and returns its id; a failure is the
/// action and why, as for [`retire_kms_key`].
pub async fn create_kms_key(
    kms: &aws_sdk_kms::Client,
    description: String,
    tag: Option<aws_sdk_kms::types::Tag>,
) -> Result<String, (String, String)> {
    let created = kms
        .create_key()
        .description(description)
        .set_tags(tag.map(|t| vec![t]))
        .send()
        .await
        .map_err(|e| ("CreateKey".to_owned(), DisplayErrorContext(e).to_string()))?;
    created
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .ok_or_else(|| ("CreateKey".to_owned(), "no KeyMetadata in the answer".to_owned()))
}

/// Deletes `alias` and schedules its key for deletion after the minimum waiting period;
/// a key or alias that is already gone (or already pending deletion) is not an error.
pub async fn retire_kms_key(
    kms: &aws_sdk_kms::Client,
    key_id: &str,
    alias: &str,
) -> Result<(), (String, String)> {
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(KEY_DELETION_DAYS)
        .send()
        .await;
    if let Err(e) = scheduled {
        let gone = e
            .as_service_error()
            .is_some_and(|s| s.is_not_found_exception() || s.is_kms_invalid_state_exception());
        if !gone {
            return Err((
                format!("ScheduleKeyDeletion {key_id}"),
                DisplayErrorContext(e).to_string(),
            ));
        }
    }
    if let Err(e) = kms.delete_alias().alias_name(alias).send().await {
        if !e.as_service_error().is_some_and(|s| s.is_not_found_exception()) {
            return Err((format!("DeleteAlias {alias}"), DisplayErrorContext(e).to_string()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_not_found_counts_as_already_deleted() {
        let api = |code: &str| {
            Err(QueryError::Api {
                service: aws_query::Service::Ec2,
                endpoint: "e".into(),
                status: 400,
                code: code.into(),
                message: "m".into(),
            })
        };
        assert!(real_error(api("InvalidVpcID.NotFound")).is_none());
        assert!(real_error(api("NoSuchEntity")).is_none());
        assert!(real_error(api("DependencyViolation")).is_some());
        assert!(real_error(Ok(String::new())).is_none());
    }

    #[test]
    fn xml_texts_in_document_order() {
        let xml = "<r><a>1</a><b><a>2</a></b></r>";
        assert_eq!(xml_texts(xml, "a"), ["1", "2"]);
        assert_eq!(xml_text(xml, "a").unwrap(), "1");
        assert!(xml_text(xml, "c").unwrap_err().contains("<c>"));
        assert!(xml_texts("not xml", "a").is_empty());
    }
}
