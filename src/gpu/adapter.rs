//! Adapter choice: `auto` wants real hardware, `gpu` takes anything (also
//! lavapipe/llvmpipe, which is how tests run without a GPU), `cpu` never
//! touches wgpu.

use std::fmt;
use std::str::FromStr;

/// Where descriptors (and batch searches) run: `--device auto|gpu|cpu`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// A hardware GPU if there is one, else the CPU.
    #[default]
    Auto,
    /// Any wgpu adapter, software ones (lavapipe, llvmpipe) too.
    Gpu,
    /// Never touch the GPU.
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            _ => Err(format!("unknown device {s:?} (expected auto, gpu or cpu)")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Gpu => "gpu",
            DeviceChoice::Cpu => "cpu",
        })
    }
}

/// Which adapter was taken.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    /// The adapter's name as the driver reports it.
    pub name: String,
    /// Graphics API used (vulkan, metal, dx12, gl), lowercase.
    pub backend: String,
    /// Integrated, discrete, virtual or CPU, as wgpu reports it.
    pub device_type: String,
    /// True for software rasterisers (lavapipe, llvmpipe, WARP).
    pub software: bool,
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}, {})", self.name, self.backend, self.device_type)?;
        if self.software {
            f.write_str(" [software]")?;
        }
        Ok(())
    }
}

fn report(a: &wgpu::Adapter) -> AdapterReport {
    let i = a.get_info();
    AdapterReport {
        name: i.name.clone(),
        backend: format!("{:?}", i.backend).to_lowercase(),
        device_type: format!("{:?}", i.device_type),
        software: i.device_type == wgpu::DeviceType::Cpu,
    }
}

/// Ranks hardware first (discrete, integrated, virtual, other), software last.
fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

pub(crate) fn choose(
    choice: DeviceChoice,
) -> anyhow::Result<Option<(wgpu::Adapter, AdapterReport)>> {
    if choice == DeviceChoice::Cpu {
        return Ok(None);
    }
    // Honours WGPU_BACKEND and friends, so a test can pin Vulkan/lavapipe.
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| rank(a.get_info().device_type));
    let best = adapters.into_iter().next();
    match (choice, best) {
        (DeviceChoice::Gpu, None) => {
            anyhow::bail!("--device gpu: no GPU adapter found (not even a software one)")
        }
        (DeviceChoice::Auto, Some(a)) if a.get_info().device_type == wgpu::DeviceType::Cpu => {
            Ok(None)
        }
        (_, None) => Ok(None),
        (_, Some(a)) => {
            let r = report(&a);
            Ok(Some((a, r)))
        }
    }
}
