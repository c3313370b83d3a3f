//! The `steward` binary.

fn main() -> anyhow::Result<()> {
    Ok(())
}
