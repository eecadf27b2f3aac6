//! The one error of a Query-API call.

use std::fmt;

use crate::Service;

/// Why a Query-API call produced no answer. The messages name the service and endpoint and
/// never speak for a caller: the server's auto_join discovery and lab's providers add what
/// they were doing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The HTTP client could not be built (no TLS roots, ...).
    #[error("cannot build an HTTP client for {service} endpoint {endpoint}: {source}")]
    HttpClient {
        /// The service the client was for.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// What reqwest said.
        source: reqwest::Error,
    },
    /// The request could not be encoded or signed (bad endpoint URL, ...).
    #[error("cannot sign {service} request for {endpoint}: {source}")]
    Signing {
        /// The service called.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// What the encoder or signer said.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The endpoint did not answer (refused, timed out, TLS failure, ...).
    #[error("{service} endpoint {endpoint} unreachable: {}", ErrorChain(source))]
    Unreachable {
        /// The service called.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// The transport failure.
        source: reqwest::Error,
    },
    /// The API answered with an error (auth failure, throttling, a missing resource, ...).
    #[error("{service} {endpoint} returned HTTP {status} {code}: {message}")]
    Api {
        /// The service called.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The API's error code (`AuthFailure`, `InvalidVpcID.NotFound`, `NoSuchEntity`, ...),
        /// or `UnknownError` when the body is not an AWS error document.
        code: String,
        /// The API's message, or the start of the body.
        message: String,
    },
    /// A 2xx answer that is not XML.
    #[error("unreadable {service} response from {endpoint}: {source}")]
    Xml {
        /// The service called.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// What the XML parser said.
        source: roxmltree::Error,
    },
    /// A 2xx XML answer for another action than the one sent.
    #[error("unreadable {service} response from {endpoint}: expected {expected}, got <{found}>")]
    UnexpectedResponse {
        /// The service called.
        service: Service,
        /// The endpoint URL.
        endpoint: String,
        /// The root element the action answers with.
        expected: &'static str,
        /// The root element that came.
        found: String,
    },
}

impl QueryError {
    /// The API's error code, when the API itself refused the call.
    pub fn code(&self) -> Option<&str> {
        match self {
            QueryError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// True when the API said the resource does not exist (EC2's `*.NotFound`, IAM's
    /// `NoSuchEntity`): for a delete, the work is already done.
    pub fn is_not_found(&self) -> bool {
        self.code()
            .is_some_and(|code| code.ends_with(".NotFound") || code == "NoSuchEntity")
    }
}

/// Displays an error and its causes, `: `-separated: reqwest's and the AWS credential
/// chain's own messages hide the cause ("error sending request").
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: &str) -> QueryError {
        QueryError::Api {
            service: Service::Ec2,
            endpoint: "http://127.0.0.1:4566/".into(),
            status: 400,
            code: code.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn only_not_found_codes_count_as_gone() {
        assert!(api("InvalidVpcID.NotFound").is_not_found());
        assert!(api("NoSuchEntity").is_not_found());
        assert!(!api("DependencyViolation").is_not_found());
        assert_eq!(api("AuthFailure").code(), Some("AuthFailure"));
    }

    #[test]
    fn api_message_names_service_endpoint_and_code() {
        assert_eq!(
            api("AuthFailure").to_string(),
            "EC2 http://127.0.0.1:4566/ returned HTTP 400 AuthFailure: m"
        );
    }
}
