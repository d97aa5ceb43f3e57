//! Where the coinbase pays: an address of any network, or a raw output script in hex.

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, ScriptBuf};

/// The default payout script, `OP_TRUE` (`51`): anyone can spend it, which is what a local test
/// chain wants when the user names no address.
pub const DEFAULT_PAYOUT_HEX: &str = "51";

/// Why a payout was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is neither a known address (e.g. bc1q…, 1…, 3…, tb1…, bcrt1…) nor a hex output script (e.g. 51 for OP_TRUE, or 76a914…88ac)")]
pub struct PayoutError(pub String);

/// Parses a payout: a Bitcoin address (mainnet, testnet, signet or regtest; the network is not
/// checked, the local chain has none) or an output script as hex.
pub fn parse_payout(text: &str) -> Result<ScriptBuf, PayoutError> {
    let t = text.trim();
    if let Ok(address) = t.parse::<Address<NetworkUnchecked>>() {
        return Ok(address.assume_checked().script_pubkey());
    }
    let hex = t.strip_prefix("0x").unwrap_or(t);
    if !hex.is_empty() && hex.len().is_multiple_of(2) && hex.len() <= 20_000 {
        if let Ok(bytes) = ::hex::decode(hex) {
            return Ok(ScriptBuf::from_bytes(bytes));
        }
    }
    Err(PayoutError(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_scripts() {
        // Satoshi's genesis-era P2PKH address.
        let p2pkh = parse_payout("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").unwrap();
        assert_eq!(
            ::hex::encode(p2pkh.as_bytes()),
            "76a91462e907b15cbf27d5425399ebf6f0fb50ebb88f1888ac"
        );
        // BIP173's P2WPKH example.
        let p2wpkh = parse_payout("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4").unwrap();
        assert_eq!(
            ::hex::encode(p2wpkh.as_bytes()),
            "0014751e76e8199196d454941c45d1b3a323f1433bd6"
        );
        assert_eq!(parse_payout("51").unwrap().as_bytes(), &[0x51]);
        assert!(parse_payout("bc1qnotanaddress").is_err());
        assert!(parse_payout("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb").is_err()); // bad checksum
        assert!(parse_payout("").is_err());
        assert!(parse_payout("5").is_err());
    }
}
