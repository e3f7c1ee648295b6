//! Where models run: ONNX Runtime's execution providers as a user names
//! them (`SET rookery.execution_provider = 'cuda'`, the option
//! `execution_provider=tensorrt|cuda|cpu` of a model function, `rookery
//! classify --execution-provider cuda`). Only the names live here, beside
//! the session settings; the model layer registers them with ONNX Runtime.

use std::fmt;
use std::str::FromStr;

use crate::options::OptionText;

/// One execution provider, on one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExecutionProvider {
    Cpu,
    /// NVIDIA CUDA (with cuDNN), on GPU `device`.
    Cuda {
        device: u32,
    },
    /// NVIDIA TensorRT, on GPU `device`.
    TensorRt {
        device: u32,
    },
}

impl ExecutionProvider {
    /// The name a user writes (`cuda`), without the device.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda { .. } => "cuda",
            Self::TensorRt { .. } => "tensorrt",
        }
    }

    pub fn is_gpu(&self) -> bool {
        !matches!(self, Self::Cpu)
    }
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda { device: 0 } | Self::TensorRt { device: 0 } => f.write_str(self.name()),
            Self::Cuda { device } | Self::TensorRt { device } => write!(f, "{}:{device}", self.name()),
        }
    }
}

/// A bad provider list, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not an execution provider list: {why} (examples: 'cpu', 'cuda', 'cuda:1', 'tensorrt|cuda|cpu')")]
pub struct ProviderParseError {
    given: String,
    why: String,
}

impl FromStr for ExecutionProvider {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let lower = text.trim().to_ascii_lowercase();
        let (name, device) = match lower.split_once(':') {
            Some((name, device)) => {
                let device = device
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| format!("device '{device}' of {name} is not a GPU number"))?;
                (name.trim().to_string(), Some(device))
            }
            None => (lower.clone(), None),
        };
        match (name.as_str(), device) {
            ("cpu", None) => Ok(Self::Cpu),
            ("cpu", Some(_)) => Err("cpu takes no device number".to_string()),
            ("cuda", d) => Ok(Self::Cuda { device: d.unwrap_or(0) }),
            ("tensorrt", d) => Ok(Self::TensorRt { device: d.unwrap_or(0) }),
            ("", _) => Err("a provider name is empty".to_string()),
            (other, _) => Err(format!("unknown provider '{other}' (known: cpu, cuda, tensorrt)")),
        }
    }
}

/// Providers in order of preference: a model runs on the first that
/// loads, and if none does the query fails naming what each one misses.
/// Listing `cpu` last is how a user allows running on the CPU when the GPU
/// cannot be used; without it nothing falls back to the CPU.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExecutionProviders(Vec<ExecutionProvider>);

impl ExecutionProviders {
    pub fn cpu() -> Self {
        Self(vec![ExecutionProvider::Cpu])
    }

    pub fn list(&self) -> &[ExecutionProvider] {
        &self.0
    }

    /// The first provider, the one wanted most.
    pub fn first(&self) -> ExecutionProvider {
        self.0.first().copied().unwrap_or(ExecutionProvider::Cpu)
    }
}

impl From<ExecutionProvider> for ExecutionProviders {
    fn from(provider: ExecutionProvider) -> Self {
        Self(vec![provider])
    }
}

impl Default for ExecutionProviders {
    fn default() -> Self {
        Self::cpu()
    }
}

impl FromStr for ExecutionProviders {
    type Err = ProviderParseError;

    /// `cuda`, `cuda:1` or a list in order of preference separated by `|`
    /// (inside a function's options, where `,` separates options) or `,`.
    fn from_str(text: &str) -> Result<Self, ProviderParseError> {
        let fail = |why: String| ProviderParseError {
            given: text.to_string(),
            why,
        };
        let mut list: Vec<ExecutionProvider> = Vec::new();
        for item in text.split(['|', ',']) {
            let provider = item.parse::<ExecutionProvider>().map_err(fail)?;
            if list.iter().any(|p| p.name() == provider.name()) {
                return Err(fail(format!("{} is named twice", provider.name())));
            }
            list.push(provider);
        }
        Ok(Self(list))
    }
}

impl fmt::Display for ExecutionProviders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&names.join("|"))
    }
}

impl OptionText for ExecutionProviders {
    fn option_text(&self) -> String {
        self.to_string()
    }
}

/// Parses a provider list for an option set or setting: the error says
/// what the value must be.
pub fn parse_providers(text: &str) -> Result<ExecutionProviders, String> {
    text.parse::<ExecutionProviders>().map_err(|e| {
        format!(
            "must be cpu, cuda, cuda:N, tensorrt or a list in order of preference such as tensorrt|cuda|cpu ({})",
            e.why
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ExecutionProvider::*;

    #[test]
    fn parses_names_devices_and_lists() {
        assert_eq!("CPU".parse::<ExecutionProviders>().unwrap(), ExecutionProviders::cpu());
        let list: ExecutionProviders = "tensorrt | cuda:1 | cpu".parse().unwrap();
        assert_eq!(list.list(), &[TensorRt { device: 0 }, Cuda { device: 1 }, Cpu]);
        assert_eq!(list.to_string(), "tensorrt|cuda:1|cpu");
        assert_eq!(
            "cuda,cpu".parse::<ExecutionProviders>().unwrap().first(),
            Cuda { device: 0 }
        );
        assert_eq!(list.to_string().parse::<ExecutionProviders>().unwrap(), list);
    }

    #[test]
    fn refuses_unknown_and_doubled_providers() {
        for (bad, why) in [
            ("gpu", "unknown provider 'gpu'"),
            ("cuda|cuda:1", "named twice"),
            ("cuda:x", "not a GPU number"),
            ("cpu:0", "no device"),
            ("", "empty"),
            ("cuda|", "empty"),
        ] {
            let e = bad.parse::<ExecutionProviders>().unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&format!("'{bad}'")), "{bad}: {e}");
        }
    }
}
