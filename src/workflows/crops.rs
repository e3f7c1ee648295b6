//! `rookery crops`: one labelled thumbnail per animal found on dotted
//! images, cut from their plain twins, and a label file.

use std::path::PathBuf;

use datafusion::common::{plan_err, Result};
use datafusion::prelude::SessionContext;

use super::{existing_folder, first_column_strings, label_counts, sql_path};
use crate::exec::run_sql;

#[derive(Debug, Clone)]
pub struct CropsCommand {
    /// Images with coloured dots on the animals.
    pub dotted: PathBuf,
    /// The same images without dots (same file names, any extension).
    pub plain: PathBuf,
    pub output_folder: PathBuf,
    /// Side of the square crops.
    pub size: u32,
}

/// Finds the dots (`blob_dots`), cuts a `size` x `size` crop centred on
/// each classified dot from the plain image (`thumbnail`), writes them as
/// `<stem>_<x>_<y>.png` and `labels.csv` (`filename,label,source,x,y`) to
/// the output folder. Returns the crops per label.
pub async fn crops(ctx: &SessionContext, command: &CropsCommand) -> Result<Vec<(String, i64)>> {
    existing_folder("dotted image folder", &command.dotted)?;
    existing_folder("plain image folder", &command.plain)?;
    if !(8..=1024).contains(&command.size) {
        return plan_err!("--size must be 8 to 1024 pixels, not {}", command.size);
    }
    run_sql(
        ctx,
        &format!(
            "CREATE EXTERNAL TABLE crops_dotted STORED AS IMAGES LOCATION {};
             CREATE EXTERNAL TABLE crops_plain STORED AS IMAGES LOCATION {};",
            sql_path(&command.dotted, true),
            sql_path(&command.plain, true)
        ),
    )
    .await?;
    let unpaired = run_sql(
        ctx,
        "SELECT name FROM crops_dotted WHERE name NOT IN (SELECT name FROM crops_plain) ORDER BY name LIMIT 5;",
    )
    .await?;
    let unpaired = first_column_strings(unpaired.last());
    if !unpaired.is_empty() {
        return plan_err!(
            "dotted images without a plain image of the same name in {}: {}",
            command.plain.display(),
            unpaired.join(", ")
        );
    }
    let size = command.size;
    let output = &command.output_folder;
    run_sql(
        ctx,
        &format!(
            "CREATE TABLE crop_dots AS
             SELECT name, dot['x'] AS x, dot['y'] AS y, dot['class'] AS label
             FROM (
                 SELECT d.name, unnest(blob_dots(d.image, image_decode(read_blob(p.path)))) AS dot
                 FROM crops_dotted d JOIN crops_plain p ON p.name = d.name
             );
             COPY (
                 SELECT c.name || '_' || c.x || '_' || c.y AS name, thumbnail(p.image, c.x, c.y, {size}) AS image
                 FROM crop_dots c JOIN crops_plain p ON p.name = c.name
                 WHERE c.label IS NOT NULL
             ) TO {} STORED AS IMAGES;
             COPY (
                 SELECT name || '_' || x || '_' || y || '.png' AS filename, label, name AS source, x, y
                 FROM crop_dots WHERE label IS NOT NULL ORDER BY filename
             ) TO {} STORED AS CSV OPTIONS ('format.has_header' 'true');",
            sql_path(output, true),
            sql_path(&output.join("labels.csv"), false)
        ),
    )
    .await?;
    label_counts(ctx, "(SELECT label FROM crop_dots WHERE label IS NOT NULL) AS found").await
}
