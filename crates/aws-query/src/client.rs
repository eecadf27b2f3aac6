//! The signed Query-API client: endpoint, region, credentials and one POST per call.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::QueryError;

/// Callers run in retry loops (discovery every 2 s): a dead endpoint must not stall them.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const CONTENT_TYPE: &str = "application/x-www-form-urlencoded; charset=utf-8";

/// A Query-API service this client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Service {
    /// Amazon EC2 (regional).
    Ec2,
    /// AWS IAM (global, signed for us-east-1).
    Iam,
}

impl Service {
    /// The SigV4 signing name.
    fn signing_name(self) -> &'static str {
        match self {
            Service::Ec2 => "ec2",
            Service::Iam => "iam",
        }
    }

    /// The API version whose answers the typed requests read.
    fn api_version(self) -> &'static str {
        match self {
            Service::Ec2 => "2016-11-15",
            Service::Iam => "2010-05-08",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Ec2 => "EC2",
            Service::Iam => "IAM",
        })
    }
}

/// One typed Query-API action: what it sends and how its answer is read.
pub trait Request {
    /// The `Action` parameter.
    const ACTION: &'static str;
    /// The root element of a successful answer (`DescribeInstancesResponse`, ...).
    const RESPONSE: &'static str;
    /// What the answer holds.
    type Output;
    /// The parameters besides `Action` and `Version`.
    fn params(&self) -> Vec<(String, String)>;
    /// Reads the answer's root element; absent fields become `None` or empty lists.
    fn read(root: roxmltree::Node<'_, '_>) -> Self::Output;
}

/// A signed AWS Query-API client for one service and endpoint.
#[derive(Debug, Clone)]
pub struct QueryClient {
    http: reqwest::Client,
    endpoint: String,
    region: String,
    service: Service,
    identity: Identity,
}

impl QueryClient {
    /// An EC2 client; `endpoint` overrides `https://ec2.<region>.amazonaws.com/`.
    pub fn ec2(endpoint: Option<&str>, region: &str, credentials: Credentials) -> Result<Self, QueryError> {
        let default = format!("https://ec2.{region}.amazonaws.com/");
        Self::build(endpoint, default, region, Service::Ec2, credentials)
    }

    /// An IAM client (a global service, signed for us-east-1); `endpoint` overrides
    /// `https://iam.amazonaws.com/`.
    pub fn iam(endpoint: Option<&str>, credentials: Credentials) -> Result<Self, QueryError> {
        let default = "https://iam.amazonaws.com/".to_owned();
        Self::build(endpoint, default, "us-east-1", Service::Iam, credentials)
    }

    fn build(
        endpoint: Option<&str>,
        default: String,
        region: &str,
        service: Service,
        credentials: Credentials,
    ) -> Result<Self, QueryError> {
        let endpoint = match endpoint {
            Some(url) if url.ends_with('/') => url.to_owned(),
            Some(url) => format!("{url}/"),
            None => default,
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|source| QueryError::HttpClient {
                service,
                endpoint: endpoint.clone(),
                source,
            })?;
        Ok(QueryClient {
            http,
            endpoint,
            region: region.to_owned(),
            service,
            identity: credentials.into(),
        })
    }

    /// The endpoint URL calls go to (always ending in `/`).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The service this client calls.
    pub fn service(&self) -> Service {
        self.service
    }

    /// Sends a typed request and reads its answer.
    pub async fn send<R: Request>(&self, request: &R) -> Result<R::Output, QueryError> {
        let params = request.params();
        let mut form: Vec<(&str, &str)> = vec![("Action", R::ACTION)];
        form.extend(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let xml = self.call(&form).await?;
        self.read_answer::<R>(&xml)
    }

    /// Reads a 2xx answer to `R`, refusing XML that answers another action.
    fn read_answer<R: Request>(&self, xml: &str) -> Result<R::Output, QueryError> {
        let doc = roxmltree::Document::parse(xml).map_err(|source| QueryError::Xml {
            service: self.service,
            endpoint: self.endpoint.clone(),
            source,
        })?;
        let root = doc.root_element();
        if root.tag_name().name() != R::RESPONSE {
            return Err(QueryError::UnexpectedResponse {
                service: self.service,
                endpoint: self.endpoint.clone(),
                expected: R::RESPONSE,
                found: root.tag_name().name().to_owned(),
            });
        }
        Ok(R::read(root))
    }

    /// Sends raw `params` (which must include `Action`) and returns the 2xx answer's body;
    /// other answers become [`QueryError::Api`] with the API's error code and message.
    pub async fn call(&self, params: &[(&str, &str)]) -> Result<String, QueryError> {
        let mut form: Vec<(&str, &str)> = params.to_vec();
        form.push(("Version", self.service.api_version()));
        let body = serde_urlencoded::to_string(&form).map_err(|e| self.signing_error(e))?;
        let mut request = self
            .http
            .post(&self.endpoint)
            .header("content-type", CONTENT_TYPE);
        for (name, value) in self.signature_headers(&body, SystemTime::now())? {
            request = request.header(name, value);
        }
        let unreachable = |source| QueryError::Unreachable {
            service: self.service,
            endpoint: self.endpoint.clone(),
            source,
        };
        let response = request.body(body).send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = api_error(&text);
        Err(QueryError::Api {
            service: self.service,
            endpoint: self.endpoint.clone(),
            status: status.as_u16(),
            code,
            message,
        })
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for a
    /// form-encoded POST of `body` to the endpoint.
    fn signature_headers(&self, body: &str, time: SystemTime) -> Result<Vec<(String, String)>, QueryError> {
        let signing_params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(self.service.signing_name())
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| self.signing_error(e))?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.endpoint.as_str(),
            [("content-type", CONTENT_TYPE)].into_iter(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| self.signing_error(e))?;
        let (instructions, _signature) = sign(signable, &signing_params)
            .map_err(|e| self.signing_error(e))?
            .into_parts();
        Ok(instructions
            .headers()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect())
    }

    fn signing_error(&self, e: impl std::error::Error + Send + Sync + 'static) -> QueryError {
        QueryError::Signing {
            service: self.service,
            endpoint: self.endpoint.clone(),
            source: Box::new(e),
        }
    }
}

/// The `<Response><Errors><Error><Code/><Message/>` body (IAM: `<ErrorResponse><Error>`),
/// or `UnknownError` and the start of the raw text if it is not that.
fn api_error(body: &str) -> (String, String) {
    let parsed = roxmltree::Document::parse(body).ok().and_then(|doc| {
        let error = doc.descendants().find(|n| n.has_tag_name("Error"))?;
        let text = |name: &str| {
            error
                .children()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .unwrap_or_default()
                .to_owned()
        };
        Some((text("Code"), text("Message")))
    });
    parsed.unwrap_or_else(|| ("UnknownError".to_owned(), body.chars().take(300).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_errors_keep_code_and_message() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>AuthFailure</Code><Message>AWS was not able to validate the provided access credentials</Message></Error></Errors><RequestID>1</RequestID></Response>"#;
        assert_eq!(
            api_error(body),
            (
                "AuthFailure".to_owned(),
                "AWS was not able to validate the provided access credentials".to_owned()
            )
        );
        assert_eq!(api_error("oops").0, "UnknownError");
    }

    #[test]
    fn signature_headers_follow_sigv4() {
        let client = QueryClient::ec2(
            Some("http://127.0.0.1:4566"),
            "us-east-1",
            Credentials::new("AK", "SK", Some("ST".into()), None, "test"),
        )
        .unwrap();
        assert_eq!(client.endpoint(), "http://127.0.0.1:4566/");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = client
            .signature_headers("Action=DescribeInstances", time)
            .unwrap();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
        };
        assert!(header("authorization").starts_with(
            "AWS4-HMAC-SHA256 Credential=AK/20231114/us-east-1/ec2/aws4_request, SignedHeaders="
        ));
        assert!(header("authorization").contains("content-type"));
        assert_eq!(header("x-amz-date"), "20231114T221320Z");
        assert_eq!(header("x-amz-security-token"), "ST");
        let default = QueryClient::ec2(
            None,
            "eu-west-1",
            Credentials::new("AK", "SK", None, None, "test"),
        )
        .unwrap();
        assert_eq!(default.endpoint(), "https://ec2.eu-west-1.amazonaws.com/");
    }

    #[test]
    fn iam_is_signed_for_us_east_1() {
        let client = QueryClient::iam(None, Credentials::new("AK", "SK", None, None, "test")).unwrap();
        assert_eq!(client.endpoint(), "https://iam.amazonaws.com/");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let headers = client.signature_headers("Action=ListRoles", time).unwrap();
        let authorization = &headers.iter().find(|(n, _)| n == "authorization").unwrap().1;
        assert!(
            authorization.contains("/20231114/us-east-1/iam/aws4_request"),
            "{authorization}"
        );
    }

    #[test]
    fn answers_to_another_action_are_refused() {
        let client = QueryClient::ec2(
            Some("http://127.0.0.1:4566"),
            "us-east-1",
            Credentials::new("AK", "SK", None, None, "test"),
        )
        .unwrap();
        let error = client
            .read_answer::<crate::ec2::DescribeInstances>("<Response/>")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unreadable EC2 response from http://127.0.0.1:4566/: expected DescribeInstancesResponse, got <Response>"
        );
        let error = client
            .read_answer::<crate::ec2::DescribeInstances>("not xml")
            .unwrap_err();
        assert!(matches!(error, QueryError::Xml { .. }), "{error:?}");
        let empty = client
            .read_answer::<crate::ec2::DescribeInstances>(
                "<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>",
            )
            .unwrap();
        assert!(empty.is_empty());
    }

    #[tokio::test]
    async fn a_dead_endpoint_is_unreachable_not_a_hang() {
        // Port 1 (tcpmux) has no listener on these machines: the connection is refused.
        let port = 1;
        let client = QueryClient::ec2(
            Some(&format!("http://127.0.0.1:{port}")),
            "us-east-1",
            Credentials::new("AK", "SK", None, None, "test"),
        )
        .unwrap();
        let error = client.call(&[("Action", "DescribeVpcs")]).await.unwrap_err();
        assert!(matches!(error, QueryError::Unreachable { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.starts_with(&format!("EC2 endpoint http://127.0.0.1:{port}/ unreachable: ")),
            "{message}"
        );
    }
}
