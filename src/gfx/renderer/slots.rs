//! Frames in flight: [`FRAMES_IN_FLIGHT`] slots, each with its own command buffer, fence,
//! descriptor sets and copies of the buffers the CPU writes for a frame (the values and every
//! list's instances), so the CPU records frame N+1 while the GPU still draws frame N.
//!
//! A frame takes the next slot ([`Renderer::begin_slot`]): it waits for that slot's fence (the
//! frame two before it, not the one just before), brings the slot's buffers up to date with the
//! latest [`Staged`] bytes, records into the slot's command buffer and submits it with the slot's
//! fence ([`Renderer::submit_slot`]). The `set_*` methods never touch a buffer the GPU may read:
//! they only stage bytes on the CPU and bump a generation; each slot copies what changed since it
//! last ran once its own fence has signalled.
//!
//! What is not per slot, and how it is kept safe:
//! - the offscreen target (colour, depth, readback buffer) and the edge pass's sums: written only
//!   by the GPU, the frames on the one queue ordered by the barriers at the start of each frame;
//!   replaced (resize, new edge scale) only after waiting for every frame in flight
//!   ([`Renderer::wait_in_flight`]);
//! - the glyph atlas and its sampler: written once at start, before any frame;
//! - the bundler's buffers and set (edges, values, style, highlight, its staging buffer), which
//!   carry its state from frame to frame: every change waits for every frame in flight first
//!   (guarded, in `bundling.rs`), so they change rarely enough (new edges, a style, a selection,
//!   new weights) that this costs one frame's overlap each time;
//! - push constants: recorded into the slot's command buffer.
//!
//! Paths that read back (offscreen renders, `time_frame`, the bundle readbacks, a window or XR
//! frame with `readback`) still go through a slot, then wait for its fence before returning.

use super::{INPUTS, Input, Renderer};
use crate::gfx::device::Device;
use crate::gfx::resources::Buffer;
use crate::gfx::{GfxError, Result, VkContext};
use ash::vk;
use gpu_allocator::MemoryLocation;
use gpu_allocator::vulkan::Allocator;
use std::cell::Cell;
use std::time::{Duration, Instant};

pub use crate::gfx::FRAMES_IN_FLIGHT;

/// The latest bytes of one [`Input`], as the `set_*` calls left them, and how often they changed.
#[derive(Default)]
pub(super) struct Staged {
    pub bytes: Vec<u8>,
    pub generation: u64,
}

/// One frame slot's objects. A part: [`Renderer`]'s Drop calls [`FrameSlot::destroy`] after
/// waiting idle (its command buffer and sets go with their pools).
#[derive(Default)]
pub(super) struct FrameSlot {
    pub command_buffer: vk::CommandBuffer,
    /// Signalled when the slot's last submission is done; unsignalled while `in_flight`.
    pub fence: vk::Fence,
    /// A submission with `fence` was made and not waited for yet.
    pub in_flight: Cell<bool>,
    /// One set per list: the slot's values, that list's instances (in the slot) and the atlas.
    pub sets: [vk::DescriptorSet; 2],
    /// The slot's copy of each input ([`Input::index`]) and the [`Staged::generation`] it holds.
    pub buffers: [Option<Buffer>; INPUTS],
    pub generations: [u64; INPUTS],
}

impl FrameSlot {
    /// # Safety
    /// The slot's submissions are done (wait idle); `device` and `allocator` made its objects.
    pub unsafe fn destroy(&mut self, device: &Device, allocator: &mut Allocator) {
        for b in &mut self.buffers {
            if let Some(mut b) = b.take() {
                // SAFETY: per the contract.
                unsafe { b.destroy(device, allocator) };
            }
        }
        // SAFETY: per the contract; destroying a null fence is a no-op.
        unsafe { device.device.destroy_fence(self.fence, None) };
        self.fence = vk::Fence::null();
        self.in_flight.set(false);
    }
}

/// What a run of [`Renderer::time_frames_in_flight`](super::Renderer::time_frames_in_flight)
/// measured per frame.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlightTimes {
    /// CPU time recording the frame's commands.
    pub record: Duration,
    /// CPU time blocked on a fence: the slot's (the frame `in_flight` before), or, with one slot,
    /// the frame's own right after its submission.
    pub wait: Duration,
    /// Wall time from the start of this frame to the start of the next.
    pub wall: Duration,
}

impl Renderer {
    /// Makes the slots' command buffers, fences and descriptor sets (from the renderer's pools) and
    /// their buffers (empty: every binding must hold one, even before the first scene).
    pub(super) fn init_slots(&mut self) -> Result<()> {
        let d = &self.device.device;
        let info = vk::CommandBufferAllocateInfo::default()
            .command_pool(self.command_pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(FRAMES_IN_FLIGHT as u32);
        // SAFETY: valid create infos on a live device (for every call in this function).
        let buffers = unsafe { d.allocate_command_buffers(&info) }.vk("allocate command buffers")?;
        let layouts = [self.pipelines.set_layout; 2 * FRAMES_IN_FLIGHT];
        let info = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(self.descriptor_pool)
            .set_layouts(&layouts);
        // SAFETY: as above.
        let sets = unsafe { d.allocate_descriptor_sets(&info) }.vk("allocate descriptor sets")?;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.command_buffer = buffers[i];
            self.device
                .name_object(slot.command_buffer, &format!("frame {i} commands"));
            slot.sets = [sets[2 * i], sets[2 * i + 1]];
            self.device
                .name_object(slot.sets[0], &format!("frame {i} network descriptor set"));
            self.device
                .name_object(slot.sets[1], &format!("frame {i} overlay descriptor set"));
            // SAFETY: as above.
            slot.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }.vk("create fence")?;
            self.device.name_object(slot.fence, &format!("frame {i} fence"));
        }
        for i in 0..FRAMES_IN_FLIGHT {
            self.sync_inputs(i)?;
        }
        Ok(())
    }

    /// How many frames may be in flight (1 or 2; see [`Renderer::set_frames_in_flight`]).
    pub fn frames_in_flight(&self) -> usize {
        self.frames_in_flight
    }

    /// Lets up to `n` frames (clamped to 1..=[`FRAMES_IN_FLIGHT`]) be in flight from the next
    /// frame on. 1 is the old behaviour: every frame waits for its own fence right after its
    /// submission. Waits for the frames in flight first.
    pub fn set_frames_in_flight(&mut self, n: usize) -> Result<()> {
        self.wait_in_flight()?;
        self.frames_in_flight = n.clamp(1, FRAMES_IN_FLIGHT);
        Ok(())
    }

    /// Waits until the GPU is done with every frame submitted so far (before destroying what they
    /// used, e.g. XR swapchain images).
    pub fn wait_frames(&self) -> Result<()> {
        self.wait_in_flight()
    }

    /// Waits for slot `i`'s last submission, if any; returns the time blocked.
    pub(super) fn wait_slot(&self, i: usize) -> Result<Duration> {
        let slot = &self.slots[i];
        if !slot.in_flight.get() {
            return Ok(Duration::ZERO);
        }
        let started = Instant::now();
        let d = &self.device.device;
        // SAFETY: the fence was submitted with the slot's last submission.
        unsafe {
            d.wait_for_fences(&[slot.fence], true, u64::MAX)
                .vk("wait for the frame")?;
            d.reset_fences(&[slot.fence]).vk("reset fence")?;
        }
        slot.in_flight.set(false);
        Ok(started.elapsed())
    }

    /// Waits for every slot's last submission: nothing the frames use is in use afterwards.
    pub(super) fn wait_in_flight(&self) -> Result<()> {
        for i in 0..FRAMES_IN_FLIGHT {
            self.wait_slot(i)?;
        }
        Ok(())
    }

    /// Starts a frame in the next slot: waits for its fence (the frame `frames_in_flight` before)
    /// and copies into its buffers what was staged since it last ran. Returns the time blocked.
    pub(super) fn begin_slot(&mut self) -> Result<Duration> {
        let next = (self.slot + 1) % self.frames_in_flight;
        let waited = self.wait_slot(next)?;
        self.sync_inputs(next)?;
        self.slot = next;
        Ok(waited)
    }

    /// The current slot's command buffer.
    pub(super) fn command_buffer(&self) -> vk::CommandBuffer {
        self.slots[self.slot].command_buffer
    }

    /// Submits the current slot's recorded command buffer (waiting for and signalling the given
    /// semaphores) with its fence. With one frame in flight, also waits for it (the time blocked
    /// is returned).
    pub(super) fn submit_slot(
        &self,
        waits: &[vk::SemaphoreSubmitInfo],
        signals: &[vk::SemaphoreSubmitInfo],
    ) -> Result<Duration> {
        let slot = &self.slots[self.slot];
        let commands = [vk::CommandBufferSubmitInfo::default().command_buffer(slot.command_buffer)];
        let submit = vk::SubmitInfo2::default()
            .wait_semaphore_infos(waits)
            .command_buffer_infos(&commands)
            .signal_semaphore_infos(signals);
        // SAFETY: the command buffer is recorded and not pending; the fence is unsignalled (it was
        // waited for and reset by begin_slot).
        unsafe {
            self.device
                .device
                .queue_submit2(self.device.queue, &[submit], slot.fence)
        }
        .vk("submit")?;
        slot.in_flight.set(true);
        if self.frames_in_flight == 1 {
            return self.wait_slot(self.slot);
        }
        Ok(Duration::ZERO)
    }

    /// Submits the current slot and waits for it, so its buffers and the target may be read.
    pub(super) fn submit_and_wait(
        &self,
        waits: &[vk::SemaphoreSubmitInfo],
        signals: &[vk::SemaphoreSubmitInfo],
    ) -> Result<()> {
        self.submit_slot(waits, signals)?;
        self.wait_slot(self.slot).map(|_| ())
    }

    /// Copies into slot `i`'s buffers every input staged since the slot last ran, replacing a
    /// buffer (and pointing the slot's sets at the new one) when it is too small. Only while the
    /// slot is not in flight.
    pub(super) fn sync_inputs(&mut self, i: usize) -> Result<()> {
        let Renderer {
            slots,
            inputs,
            device,
            allocator,
            ..
        } = self;
        let FrameSlot {
            sets,
            buffers,
            generations,
            in_flight,
            ..
        } = &mut slots[i];
        debug_assert!(!in_flight.get(), "inputs synced into a slot in flight");
        for input in Input::ALL {
            let j = input.index();
            let staged = &inputs[j];
            if generations[j] == staged.generation && buffers[j].is_some() {
                continue;
            }
            let sets = match input {
                Input::Values => &sets[..],
                Input::Instances(list, _) => &sets[list as usize..list as usize + 1],
            };
            let current = &mut buffers[j];
            let buffer = match current {
                Some(b) if b.size >= staged.bytes.len() as u64 => b,
                current => {
                    // At least 256 bytes: Vulkan has no empty buffers, and small scenes then never regrow.
                    let size = (staged.bytes.len() as u64).next_power_of_two().max(256);
                    let buffer = Buffer::new(
                        device,
                        allocator,
                        &format!("{} (frame {i})", input.name()),
                        size,
                        vk::BufferUsageFlags::STORAGE_BUFFER,
                        MemoryLocation::CpuToGpu,
                    )?;
                    let infos = [vk::DescriptorBufferInfo::default()
                        .buffer(buffer.handle)
                        .range(vk::WHOLE_SIZE)];
                    let writes: Vec<vk::WriteDescriptorSet> = sets
                        .iter()
                        .map(|&set| {
                            vk::WriteDescriptorSet::default()
                                .dst_set(set)
                                .dst_binding(input.binding())
                                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                                .buffer_info(&infos)
                        })
                        .collect();
                    // SAFETY: the slot is not in flight (its fence was waited for), so neither its
                    // sets nor its old buffer are in use.
                    unsafe {
                        device.device.update_descriptor_sets(&writes, &[]);
                        if let Some(mut old) = current.take() {
                            old.destroy(device, allocator);
                        }
                    }
                    current.insert(buffer)
                }
            };
            buffer.write(&staged.bytes)?;
            generations[j] = staged.generation;
        }
        Ok(())
    }

    /// Fails unless `n` is a valid frames-in-flight count for a timing run.
    pub(super) fn check_in_flight(n: usize) -> Result<()> {
        if (1..=FRAMES_IN_FLIGHT).contains(&n) {
            Ok(())
        } else {
            Err(GfxError::Invalid(format!(
                "{n} frames in flight (1..={FRAMES_IN_FLIGHT})"
            )))
        }
    }
}
