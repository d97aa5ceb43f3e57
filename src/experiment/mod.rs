//! The seed's proof-of-work experiments, simulated on the project's own chain code: forks from
//! propagation delay, the double-spend (51%) attack, finality after z blocks, selfish mining.
//! Each sim builds real blocks and connects them with [`crate::chain::Chain`] (validation and
//! most-work fork choice); only time and who finds the next block are drawn at random. Every
//! figure comes with its 95% interval and the published result it is checked against
//! (`theory`).

pub mod compare;
pub mod dpos;
pub mod forks;
#[cfg(feature = "node")]
pub mod live;
pub mod pbft;
pub mod pos;
pub mod race;
pub mod retarget;
pub mod selfish;
pub mod stake;
pub mod stats;
pub mod theory;

/// `text` made safe as XML character data or an attribute value: `&`, `<`, `>`, `"` and `'`
/// as entities. Every piece of free text written into an SVG (titles, labels, legends) goes
/// through here, so that a label such as "Eyal & Sirer" leaves the file valid XML (browsers
/// refuse to draw an SVG that is not).
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
