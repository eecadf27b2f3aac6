//! Typed EC2 requests and the parts of their answers callers read.

use roxmltree::Node;

use crate::xml::{children, text};
use crate::Request;

/// An EC2 filter: `Name` and the values any of which may match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The filter name (`tag:<key>`, `instance-state-name`, ...).
    pub name: String,
    /// The accepted values.
    pub values: Vec<String>,
}

impl Filter {
    /// A filter on `name` accepting any of `values`.
    pub fn new<I, V>(name: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<String>,
    {
        Filter {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }
}

/// `DescribeInstances`: the instances matching every filter (and, when given, these ids).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DescribeInstances {
    /// The filters, all of which must match.
    pub filters: Vec<Filter>,
    /// Only these instances (all when empty).
    pub instance_ids: Vec<String>,
}

/// One instance of a `DescribeInstances` answer; addresses are the answer's text, unparsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Instance {
    /// `instanceId`.
    pub instance_id: String,
    /// `instanceState/name` (`pending`, `running`, `stopped`, ...).
    pub state: Option<String>,
    /// The instance-level `privateIpAddress` (not the network interfaces' own).
    pub private_ip_address: Option<String>,
    /// `ipAddress`, the public IPv4 address.
    pub public_ip_address: Option<String>,
    /// Every `networkInterfaceSet/item/ipv6AddressesSet/item/ipv6Address`, in order.
    pub ipv6_addresses: Vec<String>,
}

impl Request for DescribeInstances {
    const ACTION: &'static str = "DescribeInstances";
    const RESPONSE: &'static str = "DescribeInstancesResponse";
    type Output = Vec<Instance>;

    fn params(&self) -> Vec<(String, String)> {
        let mut params = filter_params(&self.filters);
        params.extend(numbered("InstanceId", &self.instance_ids));
        params
    }

    /// `reservationSet/item/instancesSet/item`, in document order.
    fn read(root: Node<'_, '_>) -> Vec<Instance> {
        children(root, "reservationSet")
            .flat_map(|set| children(set, "item"))
            .flat_map(|reservation| children(reservation, "instancesSet"))
            .flat_map(|set| children(set, "item"))
            .map(|instance| Instance {
                instance_id: text(instance, "instanceId").unwrap_or_default(),
                state: children(instance, "instanceState").find_map(|state| text(state, "name")),
                private_ip_address: text(instance, "privateIpAddress"),
                public_ip_address: text(instance, "ipAddress"),
                ipv6_addresses: children(instance, "networkInterfaceSet")
                    .flat_map(|set| children(set, "item"))
                    .flat_map(|eni| children(eni, "ipv6AddressesSet"))
                    .flat_map(|set| children(set, "item"))
                    .filter_map(|item| text(item, "ipv6Address"))
                    .collect(),
            })
            .collect()
    }
}

/// `Filter.N.Name` and `Filter.N.Value.M`, one-based as the Query API numbers lists.
fn filter_params(filters: &[Filter]) -> Vec<(String, String)> {
    let mut params = Vec::new();
    for (i, filter) in filters.iter().enumerate() {
        let n = i + 1;
        params.push((format!("Filter.{n}.Name"), filter.name.clone()));
        params.extend(numbered(&format!("Filter.{n}.Value"), &filter.values));
    }
    params
}

/// `PREFIX.1`, `PREFIX.2`, ... for a list parameter.
fn numbered(prefix: &str, values: &[String]) -> Vec<(String, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, value)| (format!("{prefix}.{}", i + 1), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DescribeInstances answer as EC2 sends it: two reservations, network interfaces with
    /// their own private addresses, an instance without public addresses.
    const RESPONSE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1</reservationId>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <privateIpAddress>10.0.1.11</privateIpAddress>
          <ipAddress>54.1.2.3</ipAddress>
          <networkInterfaceSet>
            <item>
              <privateIpAddress>10.0.1.99</privateIpAddress>
              <ipv6AddressesSet>
                <item><ipv6Address>2600:1f18::11</ipv6Address></item>
              </ipv6AddressesSet>
            </item>
          </networkInterfaceSet>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <privateIpAddress>10.0.1.12</privateIpAddress>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
</DescribeInstancesResponse>"#;

    fn read(xml: &str) -> Vec<Instance> {
        let doc = roxmltree::Document::parse(xml).unwrap();
        DescribeInstances::read(doc.root_element())
    }

    #[test]
    fn instances_keep_document_order_and_instance_level_addresses() {
        assert_eq!(
            read(RESPONSE),
            [
                Instance {
                    instance_id: "i-1".into(),
                    state: Some("running".into()),
                    private_ip_address: Some("10.0.1.11".into()),
                    public_ip_address: Some("54.1.2.3".into()),
                    ipv6_addresses: vec!["2600:1f18::11".into()],
                },
                Instance {
                    instance_id: "i-2".into(),
                    private_ip_address: Some("10.0.1.12".into()),
                    ..Instance::default()
                },
            ]
        );
    }

    #[test]
    fn an_empty_reservation_set_has_no_instances() {
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>x</requestId><reservationSet/></DescribeInstancesResponse>"#;
        assert!(read(xml).is_empty());
    }

    #[test]
    fn filters_and_ids_are_numbered_from_one() {
        let request = DescribeInstances {
            filters: vec![
                Filter::new("tag:vault", ["east"]),
                Filter::new("instance-state-name", ["pending", "running"]),
            ],
            instance_ids: vec!["i-1".into()],
        };
        let params = request.params();
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            params,
            [
                ("Filter.1.Name", "tag:vault"),
                ("Filter.1.Value.1", "east"),
                ("Filter.2.Name", "instance-state-name"),
                ("Filter.2.Value.1", "pending"),
                ("Filter.2.Value.2", "running"),
                ("InstanceId.1", "i-1"),
            ]
        );
    }
}
