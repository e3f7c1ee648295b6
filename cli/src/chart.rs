//! `\chart`: a numeric column of the last result as horizontal bars, in
//! the terminal or as a PNG, so a count per class or a confusion matrix is
//! seen at a glance.

use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{plan_err, Result};
use rookery::display::cell_to_string;
use rookery_image::grid::{draw_text, CHAR_WIDTH, TEXT_HEIGHT};
use rookery_image::Image;

/// Rows of a result kept for `\chart`.
pub const CHART_MAX_ROWS: usize = 1000;

/// What `\chart` can draw from the last result: its first rows, the
/// numeric columns as numbers and the others as text labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChartData {
    pub numeric: Vec<(String, Vec<Option<f64>>)>,
    pub text: Vec<(String, Vec<String>)>,
    /// Rows of the result past the kept ones.
    pub dropped: usize,
}

impl ChartData {
    pub fn new(schema: &datafusion::arrow::datatypes::Schema) -> Self {
        let mut data = Self::default();
        for field in schema.fields() {
            if field.data_type().is_numeric() {
                data.numeric.push((field.name().clone(), Vec::new()));
            } else {
                data.text.push((field.name().clone(), Vec::new()));
            }
        }
        data
    }

    fn rows(&self) -> usize {
        self.numeric
            .first()
            .map(|c| c.1.len())
            .or_else(|| self.text.first().map(|c| c.1.len()))
            .unwrap_or(0)
    }

    /// Keeps the batch's rows up to [`CHART_MAX_ROWS`] in all.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let take = CHART_MAX_ROWS.saturating_sub(self.rows()).min(batch.num_rows());
        self.dropped += batch.num_rows() - take;
        if take == 0 {
            return Ok(());
        }
        let batch = batch.slice(0, take);
        for (name, values) in &mut self.numeric {
            let column = cast(batch.column_by_name(name).expect("schema column"), &DataType::Float64)?;
            let column = column.as_primitive::<Float64Type>();
            values.extend((0..take).map(|i| column.is_valid(i).then(|| column.value(i))));
        }
        for (name, values) in &mut self.text {
            let column = batch.column_by_name(name).expect("schema column");
            for i in 0..take {
                values.push(cell_to_string(column, i)?);
            }
        }
        Ok(())
    }

    /// (labels, values, value column name) for `column` (default: the last
    /// numeric column); labels are the first text column, else row numbers.
    pub fn series(&self, column: Option<&str>) -> Result<(Vec<String>, Vec<Option<f64>>, String)> {
        let numeric = match column {
            Some(name) => match self.numeric.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                Some(c) => c,
                None if self.text.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) => {
                    return plan_err!("\\chart: column {name} is not numeric")
                }
                None => {
                    let names: Vec<&str> = self.numeric.iter().map(|(n, _)| n.as_str()).collect();
                    return plan_err!(
                        "\\chart: the last result has no column {name} (numeric: {})",
                        names.join(", ")
                    );
                }
            },
            None => match self.numeric.last() {
                Some(c) => c,
                None => return plan_err!("\\chart: the last result has no numeric column"),
            },
        };
        let labels = match self.text.first() {
            Some((_, labels)) => labels.clone(),
            None => (1..=numeric.1.len()).map(|i| i.to_string()).collect(),
        };
        Ok((labels, numeric.1.clone(), numeric.0.clone()))
    }
}

/// Bars of `width` characters at most, scaled to the largest magnitude.
pub fn text_chart(labels: &[String], values: &[Option<f64>], title: &str, width: usize) -> String {
    let label_width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).min(30);
    let max = values.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let mut out = format!("{title}\n");
    for (label, value) in labels.iter().zip(values) {
        let label: String = label.chars().take(label_width).collect();
        let (bar, text) = match value {
            Some(v) if max > 0.0 => {
                let n = ((v.abs() / max) * width as f64).round() as usize;
                let glyph = if *v < 0.0 { "░" } else { "█" };
                (glyph.repeat(n), format_number(*v))
            }
            Some(v) => (String::new(), format_number(*v)),
            None => (String::new(), "NULL".to_string()),
        };
        out.push_str(&format!("{label:<label_width$} │{bar} {text}\n"));
    }
    out
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.4}")
    }
}

/// The same chart as a picture: one bar of 14 px per row, labels left.
pub fn png_chart(labels: &[String], values: &[Option<f64>], title: &str) -> Image {
    let label_chars = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0).clamp(1, 30) as u32;
    let (bar_area, row_height, margin) = (400u32, 14u32, 8u32);
    let left = margin + label_chars * CHAR_WIDTH + 8;
    let width = left + bar_area + 12 * CHAR_WIDTH + margin;
    let height = margin * 2 + TEXT_HEIGHT + 6 + row_height * labels.len() as u32;
    let mut image = Image {
        width,
        height,
        channels: 3,
        data: [255u8, 255, 255].repeat((width * height) as usize),
    };
    draw_text(&mut image, margin as i64, margin as i64, title, [0, 0, 0]);
    let max = values.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    for (i, (label, value)) in labels.iter().zip(values).enumerate() {
        let y = margin + TEXT_HEIGHT + 6 + i as u32 * row_height;
        let label: String = label.chars().take(label_chars as usize).collect();
        draw_text(&mut image, margin as i64, (y + 3) as i64, &label, [40, 40, 40]);
        let Some(v) = value else { continue };
        let length = if max > 0.0 {
            ((v.abs() / max) * bar_area as f64).round() as u32
        } else {
            0
        };
        let colour = if *v < 0.0 { [200, 80, 60] } else { [60, 110, 200] };
        for yy in y + 2..y + row_height - 2 {
            for xx in left..left + length {
                let at = ((yy * width + xx) * 3) as usize;
                image.data[at..at + 3].copy_from_slice(&colour);
            }
        }
        draw_text(
            &mut image,
            (left + length + 4) as i64,
            (y + 3) as i64,
            &format_number(*v),
            [0, 0, 0],
        );
    }
    image
}

/// Writes the PNG chart to `path`.
pub fn write_png_chart(path: &Path, labels: &[String], values: &[Option<f64>], title: &str) -> Result<()> {
    let image = png_chart(labels, values, title);
    let bytes = rookery_image::codec::encode(image.view(), "png", 90)
        .map_err(|e| datafusion::common::DataFusionError::Execution(e.to_string()))?;
    std::fs::write(path, bytes)
        .map_err(|e| datafusion::common::DataFusionError::Execution(format!("cannot write {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn counts() -> ChartData {
        let schema = Arc::new(Schema::new(vec![
            Field::new("label", DataType::Utf8, false),
            Field::new("images", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["pups", "adult_males", "juveniles"])),
                Arc::new(Int64Array::from(vec![Some(40), Some(10), None])),
            ],
        )
        .unwrap();
        let mut data = ChartData::new(&schema);
        data.add(&batch).unwrap();
        data
    }

    #[test]
    fn bars_scale_to_the_largest_value() {
        let (labels, values, name) = counts().series(None).unwrap();
        assert_eq!(name, "images");
        let chart = text_chart(&labels, &values, &name, 20);
        let lines: Vec<&str> = chart.lines().collect();
        assert_eq!(lines[1], format!("pups        │{} 40", "█".repeat(20)));
        assert_eq!(lines[2], format!("adult_males │{} 10", "█".repeat(5)));
        assert_eq!(lines[3], "juveniles   │ NULL");
        let image = png_chart(&labels, &values, &name);
        assert!(image.width > 400 && image.height > 3 * 14);
    }

    #[test]
    fn names_missing_and_text_columns() {
        let data = counts();
        let err = data.series(Some("nope")).unwrap_err().to_string();
        assert!(err.contains("no column nope (numeric: images)"), "{err}");
        let err = data.series(Some("label")).unwrap_err().to_string();
        assert!(err.contains("column label is not numeric"), "{err}");
        let err = ChartData::default().series(None).unwrap_err().to_string();
        assert!(err.contains("no numeric column"), "{err}");
    }
}
