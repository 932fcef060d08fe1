//! The desktop window's swapchain (FIFO, sRGB preferred) and the semaphores of its frames.
//! Frames are blitted into the swapchain images, so the images need only transfer usage.

use ash::{khr, vk};

use super::device::Device;
use super::{FRAMES_IN_FLIGHT, GfxError, Result, VkContext};

/// A swapchain and its per-image semaphores. A part, not an owner: the [`super::Renderer`]
/// destroys it (after waiting idle) before the device destroys the surface.
pub(crate) struct Swapchain {
    loader: khr::swapchain::Device,
    pub handle: vk::SwapchainKHR,
    pub images: Vec<vk::Image>,
    pub format: vk::Format,
    pub extent: vk::Extent2D,
    /// The images can be copied from (TRANSFER_SRC): screenshots read the presented image back.
    pub readable: bool,
    /// Signaled by acquire, waited by the frame's submission: one per frame slot
    /// ([`FRAMES_IN_FLIGHT`]), since a slot waits for its own fence (so for its last
    /// submission's wait on this semaphore) before it acquires with it again.
    pub acquired: [vk::Semaphore; FRAMES_IN_FLIGHT],
    /// Signaled by a frame's submission, waited by its present; one per image, because nothing
    /// tells when a present's wait is done except that image being acquired again.
    pub rendered: Vec<vk::Semaphore>,
}

/// What [`Swapchain::acquire`] got.
pub(crate) enum Acquired {
    /// Image `index`; `matches`: the swapchain still matches the surface exactly (else recreate
    /// it after this frame).
    Image { index: u32, matches: bool },
    /// The swapchain no longer fits the surface: recreate it.
    OutOfDate,
    /// No image became free in time; nothing was signaled.
    NotReady,
}

impl Swapchain {
    /// A swapchain for the device's window surface, replacing `old` (which the caller destroys
    /// afterwards), or `None` while the window has no area (minimized).
    pub fn new(device: &Device, old: vk::SwapchainKHR) -> Result<Option<Swapchain>> {
        let surface = device
            .surface
            .as_ref()
            .ok_or_else(|| GfxError::Invalid("this renderer was made without a window".into()))?;
        let (loader_s, s, pd) = (&surface.loader, surface.handle, device.physical);
        // SAFETY: queries on a live surface and the device's physical device.
        let (caps, formats) = unsafe {
            (
                loader_s
                    .get_physical_device_surface_capabilities(pd, s)
                    .vk("query surface capabilities")?,
                loader_s
                    .get_physical_device_surface_formats(pd, s)
                    .vk("query surface formats")?,
            )
        };
        // u32::MAX: the surface takes the swapchain's size, so use the window's.
        let extent = if caps.current_extent.width == u32::MAX {
            let size = surface.window.inner_size();
            vk::Extent2D {
                width: size
                    .width
                    .clamp(caps.min_image_extent.width, caps.max_image_extent.width),
                height: size
                    .height
                    .clamp(caps.min_image_extent.height, caps.max_image_extent.height),
            }
        } else {
            caps.current_extent
        };
        if extent.width == 0 || extent.height == 0 {
            return Ok(None);
        }
        if !caps.supported_usage_flags.contains(vk::ImageUsageFlags::TRANSFER_DST) {
            return Err(GfxError::NoDevice(
                "the window's swapchain images cannot be transfer destinations".into(),
            ));
        }
        let blit_dst = |f: vk::Format| {
            // SAFETY: a query on the device's physical device.
            let props = unsafe { device.instance.get_physical_device_format_properties(pd, f) };
            props.optimal_tiling_features.contains(vk::FormatFeatureFlags::BLIT_DST)
        };
        let usable: Vec<&vk::SurfaceFormatKHR> = formats.iter().filter(|f| blit_dst(f.format)).collect();
        // The frame is sRGB; an sRGB swapchain keeps the blit an exact copy of its bytes.
        let srgb = [vk::Format::B8G8R8A8_SRGB, vk::Format::R8G8B8A8_SRGB];
        let chosen = usable
            .iter()
            .find(|f| srgb.contains(&f.format) && f.color_space == vk::ColorSpaceKHR::SRGB_NONLINEAR)
            .or_else(|| usable.first())
            .copied()
            .ok_or_else(|| GfxError::NoDevice("no window surface format can be blitted to".into()))?;
        if !srgb.contains(&chosen.format) {
            tracing::warn!(format = ?chosen.format, "no sRGB swapchain format: window colors will be off");
        }
        let readable = caps.supported_usage_flags.contains(vk::ImageUsageFlags::TRANSFER_SRC);
        let mut usage = vk::ImageUsageFlags::TRANSFER_DST;
        if readable {
            usage |= vk::ImageUsageFlags::TRANSFER_SRC;
        }
        // One more than the minimum, so acquiring does not wait for the presentation engine.
        let mut image_count = caps.min_image_count + 1;
        if caps.max_image_count > 0 {
            image_count = image_count.min(caps.max_image_count);
        }
        let alpha = [
            vk::CompositeAlphaFlagsKHR::OPAQUE,
            vk::CompositeAlphaFlagsKHR::INHERIT,
            vk::CompositeAlphaFlagsKHR::PRE_MULTIPLIED,
            vk::CompositeAlphaFlagsKHR::POST_MULTIPLIED,
        ]
        .into_iter()
        .find(|&a| caps.supported_composite_alpha.contains(a))
        .unwrap_or(vk::CompositeAlphaFlagsKHR::OPAQUE);
        let info = vk::SwapchainCreateInfoKHR::default()
            .surface(s)
            .min_image_count(image_count)
            .image_format(chosen.format)
            .image_color_space(chosen.color_space)
            .image_extent(extent)
            .image_array_layers(1)
            .image_usage(usage)
            .image_sharing_mode(vk::SharingMode::EXCLUSIVE)
            .pre_transform(caps.current_transform)
            .composite_alpha(alpha)
            // FIFO: vsync, and the one mode every implementation has.
            .present_mode(vk::PresentModeKHR::FIFO)
            .clipped(true)
            .old_swapchain(old);
        let loader = khr::swapchain::Device::new(&device.instance, &device.device);
        // SAFETY: valid create info for the device's surface; `old` is this surface's
        // swapchain or null.
        let handle = unsafe { loader.create_swapchain(&info, None) }.vk("create swapchain")?;
        device.name_object(handle, "window swapchain");
        let mut swapchain = Swapchain {
            loader,
            handle,
            images: Vec::new(),
            format: chosen.format,
            extent,
            readable,
            acquired: [vk::Semaphore::null(); FRAMES_IN_FLIGHT],
            rendered: Vec::new(),
        };
        // On error, the parts made so far are destroyed.
        match swapchain.init(device) {
            Ok(()) => {
                tracing::info!(width = extent.width, height = extent.height, format = ?chosen.format,
                    images = swapchain.images.len(), "swapchain ready");
                Ok(Some(swapchain))
            }
            Err(e) => {
                // SAFETY: nothing was submitted with the new swapchain or its semaphores.
                unsafe { swapchain.destroy(device) };
                Err(e)
            }
        }
    }

    fn init(&mut self, device: &Device) -> Result<()> {
        // SAFETY: a live swapchain of this device.
        self.images = unsafe { self.loader.get_swapchain_images(self.handle) }.vk("get swapchain images")?;
        for (i, &image) in self.images.iter().enumerate() {
            device.name_object(image, &format!("swapchain image {i}"));
        }
        let info = vk::SemaphoreCreateInfo::default();
        // SAFETY: valid create info on a live device.
        for (i, acquired) in self.acquired.iter_mut().enumerate() {
            // SAFETY: as above.
            *acquired = unsafe { device.device.create_semaphore(&info, None) }.vk("create semaphore")?;
            device.name_object(*acquired, &format!("swapchain image acquired (frame {i})"));
        }
        for i in 0..self.images.len() {
            // SAFETY: as above.
            let s = unsafe { device.device.create_semaphore(&info, None) }.vk("create semaphore")?;
            self.rendered.push(s);
            device.name_object(s, &format!("swapchain image {i} rendered"));
        }
        Ok(())
    }

    /// The next image to draw into, for frame slot `slot`; on success `acquired[slot]` will be
    /// signaled.
    pub fn acquire(&self, slot: usize) -> Result<Acquired> {
        // Bounded, so a window system that stops handing images back (some do for hidden windows)
        // cannot freeze the event loop.
        const TIMEOUT_NS: u64 = 1_000_000_000;
        // SAFETY: `acquired[slot]` is unsignaled and not waited on (the slot's last frame, which
        // waited on it, was waited for).
        match unsafe {
            self.loader
                .acquire_next_image(self.handle, TIMEOUT_NS, self.acquired[slot], vk::Fence::null())
        } {
            Ok((index, suboptimal)) => Ok(Acquired::Image {
                index,
                matches: !suboptimal,
            }),
            Err(vk::Result::ERROR_OUT_OF_DATE_KHR) => Ok(Acquired::OutOfDate),
            Err(vk::Result::TIMEOUT | vk::Result::NOT_READY) => Ok(Acquired::NotReady),
            Err(e) => Err(e).vk("acquire swapchain image"),
        }
    }

    /// Presents image `index` once `rendered[index]` is signaled. Returns whether the swapchain
    /// still matches the surface (false: recreate it before the next frame).
    pub fn present(&self, queue: vk::Queue, index: u32) -> Result<bool> {
        let waits = [self.rendered[index as usize]];
        let swapchains = [self.handle];
        let indices = [index];
        let info = vk::PresentInfoKHR::default()
            .wait_semaphores(&waits)
            .swapchains(&swapchains)
            .image_indices(&indices);
        // SAFETY: the image was acquired and the submission that signals `waits` was made.
        match unsafe { self.loader.queue_present(queue, &info) } {
            Ok(suboptimal) => Ok(!suboptimal),
            Err(vk::Result::ERROR_OUT_OF_DATE_KHR) => Ok(false),
            Err(e) => Err(e).vk("present"),
        }
    }

    /// # Safety
    /// The GPU and the presentation engine must be done with the swapchain and its semaphores
    /// (wait idle); `device` must be the one it was made with.
    pub unsafe fn destroy(&mut self, device: &Device) {
        // SAFETY: per the contract; destroying null handles is a no-op.
        unsafe {
            for s in self.rendered.drain(..) {
                device.device.destroy_semaphore(s, None);
            }
            for s in self.acquired {
                device.device.destroy_semaphore(s, None);
            }
            self.loader.destroy_swapchain(self.handle, None);
        }
        self.acquired = [vk::Semaphore::null(); FRAMES_IN_FLIGHT];
        self.handle = vk::SwapchainKHR::null();
        self.images.clear();
    }
}
