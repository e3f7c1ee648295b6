//! Prints the function reference (docs/src/reference/functions.md) from the
//! functions' own documentation: `scripts/update-function-docs.sh` runs it.

fn main() -> datafusion::common::Result<()> {
    let ctx = rookery::new_session(&rookery::EngineOptions::default())?;
    print!("{}", rookery::functions::reference_markdown(&ctx));
    Ok(())
}
