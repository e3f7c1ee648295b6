//! ONNX Runtime's execution providers: registering the ones a user asked
//! for, in their order, with no silent fall back to the CPU (`ort` falls
//! back unless told not to); the batch sizes each suits; and what `rookery
//! doctor` reports of each.
//!
//! The GPU build of ONNX Runtime (`scripts/setup-onnxruntime.sh --gpu`)
//! sits where the CPU build would, with its provider libraries beside it,
//! and the CUDA and cuDNN libraries of NVIDIA's wheels in `cuda/` under
//! it. Those are loaded first by full path (the CUDA provider's library
//! names them without a path), so no `LD_LIBRARY_PATH` is needed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use ort::ep::{ExecutionProvider as _, ExecutionProviderDispatch};
use ort::session::builder::SessionBuilder;

use crate::error::{ModelError, Result};
use crate::runtime::{ensure_runtime, runtime_library};
use rookery_image::{ExecutionProvider, ExecutionProviders};

/// Images per ONNX Runtime call on the CPU. An Arrow batch of more rows is
/// split: the seed CNN's activations take about 0.5 MB per image, so a
/// batch of the 2,204 tiles of four images would need 1.1 GB at once, and
/// each new batch shape costs ONNX Runtime a new memory plan.
pub const CPU_IMAGES_PER_RUN: usize = 256;

/// Images per call on a GPU: larger calls keep it busy; a call that runs
/// out of GPU memory is halved and retried (see [`run_halving`]).
pub const GPU_IMAGES_PER_RUN: usize = 1024;

/// Images per ONNX Runtime call on `provider`.
pub fn images_per_run(provider: ExecutionProvider) -> usize {
    if provider.is_gpu() {
        GPU_IMAGES_PER_RUN
    } else {
        CPU_IMAGES_PER_RUN
    }
}

/// Where `scripts/setup-onnxruntime.sh --gpu` puts NVIDIA's CUDA and cuDNN
/// libraries: `cuda/` beside the ONNX Runtime library in use.
pub fn cuda_library_dir() -> Option<PathBuf> {
    let library = runtime_library().ok()?;
    let dir = std::fs::canonicalize(&library)
        .unwrap_or(library)
        .parent()?
        .join("cuda");
    dir.is_dir().then_some(dir)
}

/// Loads the CUDA and cuDNN libraries of [`cuda_library_dir`] once, in
/// the order they need each other; a machine without that folder relies
/// on the system's (`ldconfig`). A library that cannot load is named with
/// the loader's reason (often a library it needs: `libcuda.so.1` comes
/// with NVIDIA's driver, not with the wheels).
fn preload_cuda() -> std::result::Result<(), String> {
    static PRELOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    PRELOADED
        .get_or_init(|| {
            // The driver first: without it every CUDA library fails, and
            // the loader does not always say why.
            load_global(Path::new(DRIVER)).map_err(|e| {
                format!("NVIDIA's driver library {DRIVER} cannot be loaded ({e}): the GPU providers need an NVIDIA GPU and its driver")
            })?;
            let Some(dir) = cuda_library_dir() else {
                return Ok(());
            };
            for name in ort::ep::cuda::CUDA_DYLIBS.iter().chain(ort::ep::cuda::CUDNN_DYLIBS) {
                let path = dir.join(name);
                load_global(&path).map_err(|e| format!("cannot load {}: {e}", path.display()))?;
            }
            Ok(())
        })
        .clone()
}

/// The CUDA driver's library, installed with NVIDIA's driver.
const DRIVER: &str = "libcuda.so.1";

/// Loads a shared library for good, its symbols visible to those loaded
/// after it (a bare name is searched for as `dlopen` does).
fn load_global(path: &Path) -> std::result::Result<(), libloading::Error> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    // SAFETY: NVIDIA's libraries run no code at load that Rookery depends
    // on; they stay loaded for the life of the process.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_GLOBAL)? };
    std::mem::forget(library);
    Ok(())
}

/// Is `provider` compiled into the loaded ONNX Runtime library?
fn in_library(provider: ExecutionProvider) -> Result<bool> {
    ensure_runtime()?;
    let available = match provider {
        ExecutionProvider::Cpu => ort::ep::CPU::is_available(),
        ExecutionProvider::Cuda { .. } => ort::ep::CUDA::is_available(),
        ExecutionProvider::TensorRt { .. } => ort::ep::TensorRT::is_available(),
    };
    available.map_err(|e| crate::failure!("ONNX Runtime cannot list its execution providers: {e}"))
}

fn dispatch(provider: ExecutionProvider) -> ExecutionProviderDispatch {
    let device = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
    match provider {
        // With ONNX Runtime's arena: without it every run's activations
        // were fresh pages from the kernel (seed count on 6 full-size
        // frames, 2 cores: 0.4-0.6 s of system time with it, 3.7-5.8 s
        // without, and no more peak RSS: 0.43-0.47 GB either way).
        ExecutionProvider::Cpu => ort::ep::CPU::default().with_arena_allocator(true).build(),
        ExecutionProvider::Cuda { device: d } => ort::ep::CUDA::default().with_device_id(device(d)).build(),
        ExecutionProvider::TensorRt { device: d } => ort::ep::TensorRT::default().with_device_id(device(d)).build(),
    }
    .error_on_failure()
}

/// Why `provider` cannot be used, as a user can act on it.
fn not_in_library(provider: ExecutionProvider) -> String {
    let library = runtime_library().map_or_else(|e| e, |p| p.display().to_string());
    format!(
        "the ONNX Runtime library {library} was built without the {} provider (a CPU build); \
         `scripts/setup-onnxruntime.sh --gpu` installs the GPU build (onnxruntime-gpu with NVIDIA's CUDA and cuDNN libraries)",
        provider.name()
    )
}

/// `builder` with `provider` registered, or why it cannot be.
pub(crate) fn register(
    builder: SessionBuilder,
    provider: ExecutionProvider,
) -> std::result::Result<SessionBuilder, String> {
    if !in_library(provider).map_err(|e| e.to_string())? {
        return Err(not_in_library(provider));
    }
    if provider.is_gpu() {
        preload_cuda()?;
    }
    builder
        .with_execution_providers([dispatch(provider)])
        .map_err(|e| e.to_string())
}

/// Tries `providers` in order with `open` (which registers the provider it
/// is given and loads the model); the first that works is used. When none
/// does, the error names each provider and what it misses.
pub(crate) fn first_usable<T>(
    what: &Path,
    providers: &ExecutionProviders,
    mut open: impl FnMut(ExecutionProvider) -> std::result::Result<T, String>,
) -> Result<(T, ExecutionProvider)> {
    let mut failures = Vec::new();
    for provider in providers.list() {
        match open(*provider) {
            Ok(value) => return Ok((value, *provider)),
            Err(why) => failures.push(format!("{provider}: {why}")),
        }
    }
    Err(ModelError::Failed(format!(
        "cannot run model {} on execution provider {providers}: {}",
        what.display(),
        failures.join("; ")
    )))
}

/// Is this ONNX Runtime failure a device (or host) running out of memory?
pub fn is_out_of_memory(error: &ModelError) -> bool {
    let ModelError::Failed(message) = error else {
        return false;
    };
    let message = message.to_ascii_lowercase();
    [
        "out of memory",
        "failed to allocate memory",
        "cudaerrormemoryallocation",
        "bfcarena",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

/// Runs `items` through `run` in calls of at most `size` items. A call
/// that runs out of memory is halved and retried, and `size` stays halved
/// for later calls; a single item that runs out of memory is the error.
pub fn run_halving<T, R>(
    items: &[T],
    size: &AtomicUsize,
    mut run: impl FnMut(&[T]) -> Result<Vec<R>>,
) -> Result<Vec<R>> {
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items;
    while !rest.is_empty() {
        let take = size.load(Ordering::Relaxed).clamp(1, rest.len());
        match run(&rest[..take]) {
            Ok(rows) => {
                out.extend(rows);
                rest = &rest[take..];
            }
            Err(e) if take > 1 && is_out_of_memory(&e) => {
                size.store(take / 2, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// One provider as `rookery doctor` reports it.
#[derive(Debug, Clone)]
pub struct ProviderReport {
    pub provider: ExecutionProvider,
    /// Compiled into the ONNX Runtime library in use.
    pub in_library: bool,
    /// Registers on a session (its libraries load), or what it misses.
    pub usable: std::result::Result<(), String>,
}

/// What `rookery doctor` reports: the ONNX Runtime library, each
/// provider, the CUDA libraries and the GPUs the driver sees.
#[derive(Debug, Clone)]
pub struct Doctor {
    pub library: std::result::Result<PathBuf, String>,
    /// ONNX Runtime's build string (version, commit), once loaded.
    pub build: Option<String>,
    pub cuda_libraries: Option<PathBuf>,
    /// NVIDIA's driver and GPUs, from `/proc/driver/nvidia`.
    pub driver: Option<String>,
    pub gpus: Vec<String>,
    pub providers: Vec<ProviderReport>,
}

/// Checks what can run models here; loads ONNX Runtime if it can.
pub fn doctor() -> Doctor {
    let library = runtime_library();
    let loaded = ensure_runtime();
    let providers = [
        ExecutionProvider::Cpu,
        ExecutionProvider::Cuda { device: 0 },
        ExecutionProvider::TensorRt { device: 0 },
    ]
    .into_iter()
    .map(|provider| {
        let Ok(environment) = &loaded else {
            let why = loaded.as_ref().err().map(ToString::to_string).unwrap_or_default();
            return ProviderReport {
                provider,
                in_library: false,
                usable: Err(why),
            };
        };
        let in_library = in_library(provider).unwrap_or(false);
        let usable = if in_library {
            ort::session::Session::builder(environment)
                .map_err(|e| e.to_string())
                .and_then(|builder| register(builder, provider))
                .map(|_| ())
        } else {
            Err(not_in_library(provider))
        };
        ProviderReport {
            provider,
            in_library,
            usable,
        }
    })
    .collect();
    Doctor {
        library,
        build: loaded.is_ok().then(|| ort::info().to_string()),
        cuda_libraries: cuda_library_dir(),
        driver: std::fs::read_to_string("/proc/driver/nvidia/version")
            .ok()
            .and_then(|t| t.lines().next().map(|l| l.trim().to_string())),
        gpus: nvidia_gpus(Path::new("/proc/driver/nvidia/gpus")),
        providers,
    }
}

/// The model name of each GPU under `/proc/driver/nvidia/gpus/*/information`.
fn nvidia_gpus(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut gpus: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("information")).ok())
        .filter_map(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Model:"))
                .map(|m| m.trim().to_string())
        })
        .collect();
    gpus.sort();
    gpus
}

impl std::fmt::Display for Doctor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.library {
            Ok(path) => writeln!(f, "ONNX Runtime library: {}", path.display())?,
            Err(why) => writeln!(f, "ONNX Runtime library: missing: {why}")?,
        }
        if let Some(build) = &self.build {
            writeln!(f, "ONNX Runtime build: {build}")?;
        }
        match &self.cuda_libraries {
            Some(dir) => writeln!(f, "CUDA libraries: {}", dir.display())?,
            None => writeln!(f, "CUDA libraries: none beside ONNX Runtime (the system's, if any)")?,
        }
        writeln!(f, "NVIDIA driver: {}", self.driver.as_deref().unwrap_or("none"))?;
        writeln!(
            f,
            "GPUs: {}",
            if self.gpus.is_empty() {
                "none".to_string()
            } else {
                self.gpus.join(", ")
            }
        )?;
        writeln!(f, "Execution providers:")?;
        for p in &self.providers {
            match &p.usable {
                Ok(()) => writeln!(f, "  {:<9} usable", p.provider.name())?,
                Err(why) => writeln!(f, "  {:<9} not usable: {why}", p.provider.name())?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oom() -> ModelError {
        ModelError::Failed("model m.onnx: CUDA failure 2: out of memory".to_string())
    }

    #[test]
    fn halves_calls_that_run_out_of_memory() {
        let items: Vec<u32> = (0..10).collect();
        let size = AtomicUsize::new(8);
        let mut calls = Vec::new();
        let out = run_halving(&items, &size, |chunk| {
            calls.push(chunk.len());
            if chunk.len() > 3 {
                return Err(oom());
            }
            Ok(chunk.iter().map(|v| v * 2).collect())
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|v| v * 2).collect::<Vec<_>>());
        assert_eq!(calls, vec![8, 4, 2, 2, 2, 2, 2]);
        assert_eq!(size.load(Ordering::Relaxed), 2, "later calls stay small");
    }

    #[test]
    fn other_errors_and_single_items_fail() {
        let size = AtomicUsize::new(4);
        let e = run_halving(&[1, 2, 3], &size, |_| -> Result<Vec<u8>> { Err(oom()) }).unwrap_err();
        assert!(is_out_of_memory(&e));
        assert_eq!(size.load(Ordering::Relaxed), 1);
        let size = AtomicUsize::new(4);
        let mut calls = 0;
        let e = run_halving(&[1, 2, 3], &size, |_| -> Result<Vec<u8>> {
            calls += 1;
            Err(ModelError::Failed("bad input".to_string()))
        })
        .unwrap_err();
        assert_eq!((calls, e.to_string()), (1, "bad input".to_string()));
    }

    #[test]
    fn batch_sizes_follow_the_provider() {
        assert_eq!(images_per_run(ExecutionProvider::Cpu), CPU_IMAGES_PER_RUN);
        assert_eq!(
            images_per_run(ExecutionProvider::Cuda { device: 1 }),
            GPU_IMAGES_PER_RUN
        );
    }

    #[test]
    fn every_failure_is_named() {
        let providers: ExecutionProviders = "tensorrt|cuda".parse().unwrap();
        let e = first_usable(
            Path::new("m.onnx"),
            &providers,
            |p| -> std::result::Result<(), String> { Err(format!("{} misses libfoo.so", p.name())) },
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("m.onnx")
                && e.contains("tensorrt: tensorrt misses libfoo.so")
                && e.contains("cuda: cuda misses"),
            "{e}"
        );
        let ((), used) = first_usable(Path::new("m.onnx"), &"cuda|cpu".parse().unwrap(), |p| {
            if p.is_gpu() {
                Err("no GPU".to_string())
            } else {
                Ok(())
            }
        })
        .unwrap();
        assert_eq!(used, ExecutionProvider::Cpu, "cpu listed last is the user's fallback");
    }

    #[test]
    fn reads_gpu_models() {
        let dir = tempfile::tempdir().unwrap();
        let gpu = dir.path().join("0000:01:00.0");
        std::fs::create_dir(&gpu).unwrap();
        std::fs::write(gpu.join("information"), "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 1\n").unwrap();
        assert_eq!(nvidia_gpus(dir.path()), vec!["NVIDIA H100 80GB HBM3"]);
        assert!(nvidia_gpus(&dir.path().join("none")).is_empty());
    }
}
