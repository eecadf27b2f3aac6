//! The region and the operator's credentials, both from `--region`/`--profile` or the
//! standard AWS chain (environment, shared files, SSO, instance metadata).

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::Credentials;
use aws_sdk_kms::config::Region;
use aws_sdk_kms::error::DisplayErrorContext;

use super::ec2::Clients;
use super::AwsProvider;
use crate::provider::ProviderError;

/// The regions lab knows; a typo fails before any call instead of as a DNS error.
const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];

impl AwsProvider {
    /// The region (`--region`, else the AWS chain's), checked against the known regions.
    pub(super) async fn region(&self) -> Result<String, ProviderError> {
        let region = match &self.options.region {
            Some(region) => region.clone(),
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(profile) = &self.options.profile {
                    loader = loader.profile_name(profile);
                }
                let config = loader.load().await;
                config.region().map(|r| r.to_string()).ok_or_else(|| {
                    self.cloud_error(
                        "choosing a region",
                        "no region: pass --region, set AWS_REGION, or set one in the profile",
                    )
                })?
            }
        };
        if !REGIONS.contains(&region.as_str()) {
            return Err(self.cloud_error(
                "choosing a region",
                format!(
                    "unknown region \"{region}\"; known regions: {}",
                    REGIONS.join(", ")
                ),
            ));
        }
        Ok(region)
    }

    /// Clients for `region` with the operator's credentials, which must resolve now.
    pub(super) async fn connect(&self, region: &str) -> Result<Clients, ProviderError> {
        let config = self.sdk_config(region).await;
        let credentials = self.credentials(&config).await?;
        Clients::new(&config, self.options.endpoint.as_deref(), region, credentials)
            .map_err(|(action, message)| self.cloud_error(action, message))
    }

    async fn sdk_config(&self, region: &str) -> SdkConfig {
        let mut loader =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(region.to_owned()));
        if let Some(profile) = &self.options.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(endpoint) = &self.options.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        loader.load().await
    }

    async fn credentials(&self, config: &SdkConfig) -> Result<Credentials, ProviderError> {
        let no_credentials = |detail: String| {
            self.cloud_error(
                "finding AWS credentials",
                format!(
                    "{detail}; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, pass --profile, \
                     or run `aws configure`"
                ),
            )
        };
        config
            .credentials_provider()
            .ok_or_else(|| no_credentials("no credential provider".to_owned()))?
            .provide_credentials()
            .await
            .map_err(|e| no_credentials(DisplayErrorContext(e).to_string()))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::provider::aws::AwsOptions;
    use crate::provider::LocalProvider;
    use crate::state::LabHome;

    fn region_of(region: &str) -> Result<String, ProviderError> {
        let provider = AwsProvider::new(
            LocalProvider::new(PathBuf::from("labnode")),
            &LabHome::new(PathBuf::from("/lab")),
            AwsOptions {
                region: Some(region.to_owned()),
                ..AwsOptions::default()
            },
        );
        provider.runtime()?.block_on(provider.region())
    }

    #[test]
    fn a_known_region_passes_and_a_typo_fails_before_any_call() {
        assert_eq!(region_of("us-east-1").unwrap(), "us-east-1");
        assert_eq!(region_of("eu-west-1").unwrap(), "eu-west-1");
        for typo in ["us-east-9", "US-EAST-1", "us-east-1 ", ""] {
            let error = region_of(typo).unwrap_err().to_string();
            assert!(
                error.contains(&format!("unknown region \"{typo}\"")) && error.contains("us-west-2"),
                "{typo:?}: {error}"
            );
        }
    }
}
