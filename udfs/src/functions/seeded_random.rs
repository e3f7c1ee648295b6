//! `seeded_random(seed)`: a pseudo-random number fixed by its seed, for
//! reproducible random choices in queries (augmentation, sampling).

use std::sync::Arc;

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use datafusion_macros::user_doc;

use rookery_image::args::{arg_arrays, int_arg, int_at, signature, ArgKind};
use rookery_image::rng::Rng;

#[user_doc(
    doc_section(label = "Math Functions"),
    description = "Returns a number in [0, 1) that depends on seed alone: the same seed gives the same number on every row, run and machine, and nearby seeds give unrelated numbers (SplitMix64). Unlike random(), a query using it gives the same result every time; derive one seed per row and choice, e.g. from a row number and a constant.",
    syntax_example = "seeded_random(seed)",
    sql_example = r#"```sql
> SELECT round(seeded_random(7), 4) AS r, seeded_random(7) = seeded_random(7) AS same;
+--------+------+
| r      | same |
+--------+------+
| 0.9283 | true |
+--------+------+
```"#,
    argument(name = "seed", description = "Any integer.")
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SeededRandom {
    signature: Signature,
}

impl Default for SeededRandom {
    fn default() -> Self {
        Self {
            signature: signature(&[ArgKind::Integer], &[], Volatility::Immutable),
        }
    }
}

/// The number of `seed`.
pub fn seeded_unit(seed: i64) -> f64 {
    Rng::derive(seed as u64, 0x5EED, 0).unit()
}

impl ScalarUDFImpl for SeededRandom {
    fn name(&self) -> &str {
        "seeded_random"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = arg_arrays(&args.args, args.number_rows)?;
        let seeds = int_arg(self.name(), &arrays, 0)?;
        let out: Float64Array = (0..seeds.len())
            .map(|row| int_at(seeds, row).map(seeded_unit))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::test_util::invoke;
    use datafusion::arrow::array::{Array, Int64Array};

    #[test]
    fn fixed_by_the_seed_uniform_and_null_for_null() {
        let seeds: Vec<Option<i64>> = (0..10_000)
            .map(Some)
            .chain([None, Some(i64::MIN), Some(i64::MAX)])
            .collect();
        let out = invoke(&SeededRandom::default(), vec![Arc::new(Int64Array::from(seeds))]).unwrap();
        let out = out.as_any().downcast_ref::<Float64Array>().unwrap();
        assert!(out.is_null(10_000));
        let values: Vec<f64> = (0..10_000).map(|i| out.value(i)).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "{mean}");
        let below_tenth = values.iter().filter(|v| **v < 0.1).count();
        assert!((800..1200).contains(&below_tenth), "{below_tenth}");
        assert_eq!(out.value(3), seeded_unit(3));
    }
}
