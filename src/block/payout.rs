//! Where the coinbase pays: an address of any network, or a raw output script in hex.

use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Network, ScriptBuf};

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

/// A payout as the user wrote it: the output script, and the address it came from (if it was one),
/// so that the address's network can be checked once the chain's network is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payout {
    /// The coinbase output script.
    pub script: ScriptBuf,
    /// The text as given, for messages.
    pub text: String,
    address: Option<Address<NetworkUnchecked>>,
}

/// A payout address of another network than the chain's (Bitcoin Core answers such an address
/// with RPC error −5, "Error: Invalid address", in `generatetoaddress`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{address}' is a {address_network} address, but the chain is {chain_network}: pay to a {chain_network} address ({prefixes}) or give an output script in hex (e.g. 51 for OP_TRUE)")]
pub struct WrongNetwork {
    /// The address as given.
    pub address: String,
    /// The networks the address is valid for, e.g. `mainnet` or `testnet/signet/regtest`.
    pub address_network: &'static str,
    /// The chain's network, e.g. `regtest`.
    pub chain_network: &'static str,
    /// What addresses of the chain's network start with.
    pub prefixes: &'static str,
}

impl Payout {
    /// Parses an address of any network or a hex output script, as [`parse_payout`] does, and
    /// keeps the address for [`Payout::check_network`].
    pub fn parse(text: &str) -> Result<Payout, PayoutError> {
        let t = text.trim();
        let address = t.parse::<Address<NetworkUnchecked>>().ok();
        let script = match &address {
            Some(a) => a.clone().assume_checked().script_pubkey(),
            None => parse_payout(text)?,
        };
        Ok(Payout {
            script,
            text: t.to_string(),
            address,
        })
    }

    /// The default payout, `OP_TRUE`.
    pub fn op_true() -> Payout {
        Payout {
            script: ScriptBuf::from_bytes(vec![0x51]),
            text: DEFAULT_PAYOUT_HEX.to_string(),
            address: None,
        }
    }

    /// Refuses an address of another network than `network` (as Core's `DecodeDestination`
    /// does for the node's chain). Hex scripts carry no network and always pass. Testnet,
    /// testnet4, signet and regtest share base58 prefixes (m…, n…, 2…), so those addresses pass
    /// on all four; bech32 ones must carry the network's own prefix (bc1, tb1, bcrt1).
    pub fn check_network(&self, network: Network) -> Result<(), WrongNetwork> {
        match &self.address {
            Some(a) if !a.is_valid_for_network(network) => Err(WrongNetwork {
                address: self.text.clone(),
                address_network: address_network(a),
                chain_network: network_name(network),
                prefixes: network_prefixes(network),
            }),
            _ => Ok(()),
        }
    }
}

/// What a user calls `network`.
pub fn network_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "mainnet",
        Network::Testnet => "testnet",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        _ => "regtest",
    }
}

/// How addresses of `network` begin.
fn network_prefixes(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "bc1…, 1…, 3…",
        Network::Regtest => "bcrt1…, m…, n…, 2…",
        _ => "tb1…, m…, n…, 2…",
    }
}

/// The networks an address is valid for, named as a user would.
fn address_network(a: &Address<NetworkUnchecked>) -> &'static str {
    if a.is_valid_for_network(Network::Bitcoin) {
        "mainnet"
    } else if a.is_valid_for_network(Network::Regtest) && a.is_valid_for_network(Network::Testnet) {
        "testnet/signet/regtest"
    } else if a.is_valid_for_network(Network::Testnet) {
        "testnet/signet"
    } else {
        "regtest"
    }
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

    #[test]
    fn addresses_of_another_network_than_the_chains_are_refused() {
        let mainnet = Payout::parse("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4").unwrap();
        let err = mainnet.check_network(Network::Regtest).unwrap_err();
        assert_eq!(err.address_network, "mainnet");
        assert_eq!(err.chain_network, "regtest");
        let msg = err.to_string();
        for needle in [
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            "mainnet",
            "regtest",
            "bcrt1",
        ] {
            assert!(msg.contains(needle), "{needle} missing from: {msg}");
        }
        assert_eq!(mainnet.check_network(Network::Bitcoin), Ok(()));
        // P2PKH on mainnet (1…) is refused on regtest too; the script is still P2PKH.
        let p2pkh = Payout::parse("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").unwrap();
        assert!(p2pkh.check_network(Network::Regtest).is_err());
        assert_eq!(
            p2pkh.script,
            parse_payout("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa").unwrap()
        );
        // BIP173's regtest P2WPKH: regtest only (tb1 is testnet/signet's).
        let bcrt = Payout::parse("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080").unwrap();
        assert_eq!(bcrt.check_network(Network::Regtest), Ok(()));
        let err = bcrt.check_network(Network::Bitcoin).unwrap_err();
        assert_eq!(err.address_network, "regtest");
        assert!(bcrt.check_network(Network::Testnet).is_err());
        // BIP173's testnet P2WPKH is not a regtest address.
        let tb1 = Payout::parse("tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx").unwrap();
        assert_eq!(
            tb1.check_network(Network::Regtest)
                .unwrap_err()
                .address_network,
            "testnet/signet"
        );
        // A testnet base58 address (m…) is also a regtest one, as in Core.
        let m = Payout::parse("mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn").unwrap();
        assert_eq!(m.check_network(Network::Regtest), Ok(()));
        assert_eq!(
            m.check_network(Network::Bitcoin)
                .unwrap_err()
                .address_network,
            "testnet/signet/regtest"
        );
        // Hex scripts carry no network.
        let script = Payout::parse("51").unwrap();
        for n in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Signet,
            Network::Regtest,
        ] {
            assert_eq!(script.check_network(n), Ok(()));
        }
        assert_eq!(Payout::op_true(), script);
        assert!(Payout::parse("bc1qnotanaddress").is_err());
    }
}
