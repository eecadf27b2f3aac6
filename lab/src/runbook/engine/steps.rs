//! The drill steps that drive more than one request: the canary (start, stop, verify)
//! and the DR operation token's OTP flow.

use serde_json::Value;

use super::{Engine, StepOutcome};
use crate::canary::{self, Canary, CanaryConfig};
use crate::runbook::format::CanaryAction;

impl Engine<'_> {
    pub(super) fn canary_step(
        &mut self,
        action: CanaryAction,
        on: Option<&str>,
        failover: Option<&str>,
        rate: u32,
        token: Option<&str>,
    ) -> StepOutcome {
        match action {
            CanaryAction::Start => {
                if self.canary.is_some() {
                    return Err("the canary is already running".to_owned());
                }
                let on = on.unwrap_or_default();
                let (c, n) = self.node_for(on)?;
                let token = match token {
                    Some(t) => self.expand(t)?,
                    None => self.root_token(c),
                };
                canary::prepare(&self.state.clusters[c].nodes[n].api_addr, &token)
                    .map_err(|e| e.to_string())?;
                let mut candidates: Vec<String> = self.state.clusters[c]
                    .nodes
                    .iter()
                    .map(|n| n.api_addr.clone())
                    .collect();
                if let Some(failover) = failover {
                    let f = self.cluster_of(failover)?;
                    candidates.extend(self.state.clusters[f].nodes.iter().map(|n| n.api_addr.clone()));
                }
                self.canary = Some(Canary::start(CanaryConfig {
                    candidates,
                    token,
                    rate,
                    epoch: self.journal.epoch(),
                }));
                Ok(format!(
                    "writing {rate}/s to {on}{}",
                    failover.map(|f| format!(", then {f}")).unwrap_or_default()
                ))
            }
            CanaryAction::Stop | CanaryAction::Verify => {
                if let Some(canary) = self.canary.take() {
                    self.canary_log = Some(canary.stop().map_err(|e| e.to_string())?);
                }
                let log = self
                    .canary_log
                    .as_ref()
                    .ok_or_else(|| "the canary never ran".to_owned())?;
                let summary = format!("{} acked, {} failed attempts", log.acks.len(), log.failures.len());
                if action == CanaryAction::Stop {
                    return Ok(summary);
                }
                let on = on.unwrap_or_default();
                let (c, n) = self.node_for(on)?;
                let token = match token {
                    Some(t) => self.expand(t)?,
                    None => self.root_token(c),
                };
                let verification = canary::verify(log, &self.state.clusters[c].nodes[n].api_addr, &token)
                    .map_err(|e| e.to_string())?;
                let detail = format!(
                    "{summary}; {} missing on {}",
                    verification.missing.len(),
                    self.state.qualified(c, n)
                );
                self.rpo = Some(verification);
                Ok(detail)
            }
        }
    }

    /// The OTP flow on a DR secondary, authorized by `keys_from`'s unseal keys.
    pub(super) fn generate_dr_token(&mut self, on: &str, keys_from: &str, into: &str) -> StepOutcome {
        let (c, n) = self.node_for(on)?;
        let keys = self.home.credentials(keys_from).map_err(|e| e.to_string())?;
        let base = ["operator", "generate-root", "-dr-token"];
        let run = |extra: &[&str]| -> Result<Value, String> {
            let args: Vec<String> = base.iter().chain(extra).map(|s| (*s).to_owned()).collect();
            let out = self.vault(&args, c, n, None)?;
            serde_json::from_str(&out).map_err(|e| format!("unexpected output ({e}): {out}"))
        };
        let _ = run(&["-cancel"]);
        let init = run(&["-init"])?;
        let field =
            |v: &Value, name: &str| v.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
        let (nonce, otp) = (field(&init, "nonce"), field(&init, "otp"));
        if otp.is_empty() {
            return Err(format!("-init returned no OTP: {init}"));
        }
        // Auto-unsealed (awskms) clusters authorize with recovery keys, Shamir ones with
        // unseal keys.
        let (shares, threshold, kind) = if keys.unseal_keys_b64.is_empty() {
            (&keys.recovery_keys_b64, keys.recovery_keys_threshold, "recovery")
        } else {
            (&keys.unseal_keys_b64, keys.unseal_threshold, "unseal")
        };
        let mut encoded = String::new();
        for key in shares.iter().take(threshold as usize) {
            let status = run(&[&format!("-nonce={nonce}"), key])?;
            if status.get("complete") == Some(&Value::Bool(true)) {
                encoded = field(&status, "encoded_token");
                break;
            }
        }
        if encoded.is_empty() {
            return Err(format!(
                "not complete after {threshold} {kind} keys of {keys_from}"
            ));
        }
        let decoded = run(&[&format!("-decode={encoded}"), &format!("-otp={otp}")])?;
        let token = field(&decoded, "token");
        if token.is_empty() {
            return Err(format!("decoding gave no token: {decoded}"));
        }
        self.vars.insert(into.to_owned(), token);
        Ok(format!(
            "{threshold} {kind} keys of {keys_from}, token in {{{{{into}}}}}"
        ))
    }
}
