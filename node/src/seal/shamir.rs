//! Shamir's secret sharing over GF(256), using the maintained `blahaj` crate.
//!
//! A share is the crate's encoding: one x-coordinate byte followed by one byte per
//! secret byte. A single share (1-of-1) is the key itself, as Vault does it.

use blahaj::{Share, Sharks};

use super::SealError;

/// Splits `secret` into `shares` pieces, any `threshold` of which recombine it.
pub fn split(secret: &[u8], shares: u8, threshold: u8) -> Vec<Vec<u8>> {
    if shares == 1 {
        return vec![secret.to_vec()];
    }
    Sharks(threshold)
        .dealer(secret)
        .take(shares as usize)
        .map(|s| Vec::from(&s))
        .collect()
}

/// Recombines shares; `threshold` shares must be given, all distinct.
pub fn combine<S: AsRef<[u8]>>(parts: &[S], threshold: u8) -> Result<Vec<u8>, SealError> {
    if threshold == 1 {
        return parts
            .first()
            .map(|p| p.as_ref().to_vec())
            .ok_or(SealError::NoShares);
    }
    let shares = parts
        .iter()
        .map(|p| Share::try_from(p.as_ref()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SealError::MalformedShare)?;
    Sharks(threshold)
        .recover(shares.iter())
        .map_err(|e| SealError::Unrecoverable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recombines() {
        let secret: Vec<u8> = (0..32).collect();
        let parts = split(&secret, 5, 3);
        assert_eq!(parts.len(), 5);
        assert_eq!(combine(&parts[1..4], 3).unwrap(), secret);
        assert_eq!(
            combine(&[parts[0].clone(), parts[4].clone(), parts[2].clone()], 3).unwrap(),
            secret
        );
        assert_ne!(combine(&parts[..2], 2).unwrap(), secret);
    }

    #[test]
    fn shares_that_cannot_combine_say_why() {
        let none: [Vec<u8>; 0] = [];
        let err = combine(&none, 1).unwrap_err();
        assert!(matches!(err, SealError::NoShares));
        assert_eq!(err.to_string(), "no key shares given");
        let err = combine(&[vec![1u8]], 2).unwrap_err();
        assert!(matches!(err, SealError::MalformedShare(_)));
        assert!(err.to_string().starts_with("invalid key share: "));
        let parts = split(&[9u8; 16], 3, 3);
        let err = combine(&parts[..2], 3).unwrap_err();
        assert!(matches!(err, SealError::Unrecoverable(_)));
    }

    #[test]
    fn one_of_one_is_the_key() {
        let secret = vec![7u8; 32];
        let parts = split(&secret, 1, 1);
        assert_eq!(parts, vec![secret.clone()]);
        assert_eq!(combine(&parts, 1).unwrap(), secret);
    }
}
