//! Handing the renderer what to draw: the values and the network's and overlay's instance lists,
//! written into host-visible storage buffers (grown as needed) between frames.

use super::{Kind, List, Renderer, Slot};
use crate::gfx::draw::{DrawList, NetworkDraw};
use crate::gfx::resources::Buffer;
use crate::gfx::{GfxError, Result};
use ash::vk;
use gpu_allocator::MemoryLocation;

impl Renderer {
    /// Uploads the values tiles and cubes read: once per input, not per frame.
    pub fn set_values(&mut self, values: &[f32]) -> Result<()> {
        self.write(Slot::Values, bytemuck::cast_slice(values))
    }

    /// Uploads the network's instances: when the layout changes, not per frame.
    pub fn set_draw_list(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Network, list)
    }

    /// Uploads the overlay's instances (highlights, rays, panels, voxels), drawn after the
    /// network's: small, so rebuilt every frame.
    pub fn set_overlay(&mut self, list: &DrawList) -> Result<()> {
        self.write_list(List::Overlay, list)
    }

    pub(super) fn write_list(&mut self, which: List, list: &DrawList) -> Result<()> {
        let count = |n: usize| u32::try_from(n).map_err(|_| GfxError::Invalid(format!("{n} instances")));
        self.write(Slot::Instances(which, Kind::Tiles), bytemuck::cast_slice(&list.tiles))?;
        self.write(Slot::Instances(which, Kind::Cubes), bytemuck::cast_slice(&list.cubes))?;
        self.write(Slot::Instances(which, Kind::Lines), bytemuck::cast_slice(&list.lines))?;
        self.write(Slot::Instances(which, Kind::Glyphs), bytemuck::cast_slice(&list.glyphs))?;
        self.counts[which as usize] = [
            count(list.tiles.len())?,
            count(list.cubes.len())?,
            count(list.lines.len())?,
            count(list.glyphs.len())?,
        ];
        Ok(())
    }

    /// Draw calls a frame records: one per list and kind of instance present, however many
    /// instances (at most 8).
    pub fn draw_calls(&self) -> usize {
        self.counts.iter().flatten().filter(|&&n| n > 0).count()
    }

    /// Uploads a network's values and draw list.
    pub fn set_network(&mut self, draw: &NetworkDraw) -> Result<()> {
        self.set_values(&draw.values)?;
        self.set_draw_list(&draw.list)
    }

    /// Writes `bytes` into a slot's buffer, replacing the buffer (and its descriptor) when it is
    /// too small. Only called between frames (no submission in flight).
    pub(super) fn write(&mut self, slot: Slot, bytes: &[u8]) -> Result<()> {
        let (current, sets) = match slot {
            Slot::Values => (&mut self.values, &self.descriptor_sets[..]),
            Slot::Instances(list, kind) => (
                &mut self.instances[list as usize][kind as usize],
                &self.descriptor_sets[list as usize..list as usize + 1],
            ),
        };
        let buffer = match current {
            Some(b) if b.size >= bytes.len() as u64 => b,
            current => {
                // At least 256 bytes: Vulkan has no empty buffers, and small scenes then never regrow.
                let size = (bytes.len() as u64).next_power_of_two().max(256);
                let usage = vk::BufferUsageFlags::STORAGE_BUFFER;
                let buffer = Buffer::new(
                    &self.device,
                    &mut self.allocator,
                    slot.name(),
                    size,
                    usage,
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
                            .dst_binding(slot.binding())
                            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                            .buffer_info(&infos)
                    })
                    .collect();
                // SAFETY: no submission is in flight (every render waits for its fence), so
                // neither the sets nor the old buffer are in use.
                unsafe {
                    self.device.device.update_descriptor_sets(&writes, &[]);
                    if let Some(mut old) = current.take() {
                        old.destroy(&self.device, &mut self.allocator);
                    }
                }
                current.insert(buffer)
            }
        };
        buffer.write(bytes)
    }
}
