//! Recording a frame's commands: the scene pass (network, overlay, bundled edges, the edge pass's
//! composite) into the target, then what the frame's [`Finish`](super::Finish) asks for.

use super::{Finish, Kind, LISTS, Renderer};
use crate::gfx::bundle::{DrawPart, Pending};
use crate::gfx::colormap::srgb_to_linear;
use crate::gfx::resources::full_range;
use crate::gfx::target::Target;
use crate::gfx::{BACKGROUND_SRGB, Result, VkContext};
use ash::vk;

/// What a scene rendering scope draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Everything: the opaque kinds, the bundled edges as ribbons with the highlight, the glyphs.
    All,
    /// The opaque kinds (tiles, cubes, lines of both lists), before the edge pass.
    Opaque,
    /// The highlighted edges and the glyphs, after the edge pass.
    Overlay,
}

impl Renderer {
    pub(super) fn record(&self, target: &Target, views: u32, push_constants: &[u8], finish: Finish) -> Result<()> {
        let d = &self.device.device;
        let cb = self.command_buffer();
        let color_range = full_range(vk::ImageAspectFlags::COLOR, views);
        let depth_range = full_range(vk::ImageAspectFlags::DEPTH, views);
        let [r, g, b] = BACKGROUND_SRGB.map(srgb_to_linear);
        // SAFETY: the slot's command buffer is not pending (begin_slot waited for its fence);
        // every handle recorded is live and owned by this renderer.
        unsafe {
            d.reset_command_buffer(cb, vk::CommandBufferResetFlags::empty())
                .vk("reset command buffer")?;
            let begin = vk::CommandBufferBeginInfo::default().flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
            d.begin_command_buffer(cb, &begin).vk("begin command buffer")?;

            // Old contents are discarded (UNDEFINED); the previous frame's writes, copies or blits
            // from them and (the edge pass's) depth reads must be done before the images are
            // written again: with frames in flight that frame may still be running (same queue).
            use vk::PipelineStageFlags2 as S;
            let to_attachments = [
                vk::ImageMemoryBarrier2::default()
                    .src_stage_mask(S::COLOR_ATTACHMENT_OUTPUT | S::COPY | S::BLIT)
                    .src_access_mask(vk::AccessFlags2::COLOR_ATTACHMENT_WRITE)
                    .dst_stage_mask(vk::PipelineStageFlags2::COLOR_ATTACHMENT_OUTPUT)
                    .dst_access_mask(vk::AccessFlags2::COLOR_ATTACHMENT_WRITE)
                    .old_layout(vk::ImageLayout::UNDEFINED)
                    .new_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                    .image(target.color.handle)
                    .subresource_range(color_range),
                vk::ImageMemoryBarrier2::default()
                    .src_stage_mask(
                        S::EARLY_FRAGMENT_TESTS
                            | S::LATE_FRAGMENT_TESTS
                            | S::COPY
                            | S::COMPUTE_SHADER
                            | S::FRAGMENT_SHADER,
                    )
                    .src_access_mask(vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_WRITE)
                    .dst_stage_mask(
                        vk::PipelineStageFlags2::EARLY_FRAGMENT_TESTS | vk::PipelineStageFlags2::LATE_FRAGMENT_TESTS,
                    )
                    .dst_access_mask(
                        vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_READ
                            | vk::AccessFlags2::DEPTH_STENCIL_ATTACHMENT_WRITE,
                    )
                    .old_layout(vk::ImageLayout::UNDEFINED)
                    .new_layout(vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL)
                    .image(target.depth.handle)
                    .subresource_range(depth_range),
            ];
            d.cmd_pipeline_barrier2(
                cb,
                &vk::DependencyInfo::default().image_memory_barriers(&to_attachments),
            );
            // Edge bundling waiting for this frame (new edges or values): before the pass that draws it.
            let pending = self.bundle.take_pending();
            if pending != Pending::default() || self.bundle.unfinished() {
                let budget = Some(crate::gfx::bundle::ITERATIONS_PER_FRAME);
                self.bundle.record(&self.device, cb, pending, None, budget);
            }
            let timed = finish == Finish::Timestamps && self.query_pool != vk::QueryPool::null();
            if timed {
                d.cmd_reset_query_pool(cb, self.query_pool, 0, 2);
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::TOP_OF_PIPE, self.query_pool, 0);
            }

            use vk::AttachmentLoadOp as Load;
            use vk::AttachmentStoreOp as Store;
            // Depth kept only when the edge pass reads it or it goes on to an XR depth swapchain.
            let keep_depth = if matches!(finish, Finish::Xr { depth: Some(_), .. }) {
                Store::STORE
            } else {
                Store::DONT_CARE
            };
            let clear = [r, g, b, 1.0];
            if self.frame_edge_scale > 1 {
                // The bundle between the opaque kinds and the rest, as ribbons would be: the
                // opaque kinds, the edge pass (it reads their depth), then the highlighted edges
                // and the glyphs over the edges' light.
                self.record_scene_rendering(
                    cb,
                    target,
                    push_constants,
                    (Load::CLEAR, Store::STORE),
                    clear,
                    Stage::Opaque,
                );
                let drawn = (self.bundle.edge_count(), self.bundle.drawn_segments());
                self.edge_pass
                    .record(&self.device, cb, target, self.bundle.set(), drawn, push_constants)?;
                self.record_scene_rendering(
                    cb,
                    target,
                    push_constants,
                    (Load::LOAD, keep_depth),
                    clear,
                    Stage::Overlay,
                );
            } else {
                self.record_scene_rendering(cb, target, push_constants, (Load::CLEAR, keep_depth), clear, Stage::All);
            }
            if timed {
                d.cmd_write_timestamp2(cb, vk::PipelineStageFlags2::BOTTOM_OF_PIPE, self.query_pool, 1);
            }
            if matches!(finish, Finish::Timestamps | Finish::Nothing) {
                d.end_command_buffer(cb).vk("end command buffer")?;
                return Ok(());
            }

            let to_transfer = [vk::ImageMemoryBarrier2::default()
                .src_stage_mask(vk::PipelineStageFlags2::COLOR_ATTACHMENT_OUTPUT)
                .src_access_mask(vk::AccessFlags2::COLOR_ATTACHMENT_WRITE)
                // Read by the readback copy or by the blit into the window.
                .dst_stage_mask(vk::PipelineStageFlags2::COPY | vk::PipelineStageFlags2::BLIT)
                .dst_access_mask(vk::AccessFlags2::TRANSFER_READ)
                .old_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                .new_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)
                .image(target.color.handle)
                .subresource_range(color_range)];
            d.cmd_pipeline_barrier2(cb, &vk::DependencyInfo::default().image_memory_barriers(&to_transfer));
            match finish {
                Finish::Readback => self.record_readback(cb, target, target.color.handle, views),
                Finish::Window { image, readback } => self.record_blit(cb, target, image, readback),
                Finish::Xr {
                    image,
                    depth,
                    readback,
                    mirror,
                } => {
                    self.record_xr_copy(cb, target, image, readback);
                    if let Some(depth) = depth {
                        self.record_xr_depth_copy(cb, target, depth);
                    }
                    if let Some((window_image, window_extent)) = mirror {
                        self.record_mirror_blit(cb, target, window_image, window_extent);
                    }
                }
                Finish::Timestamps | Finish::Nothing => unreachable!("returned after the pass"),
            }
            d.end_command_buffer(cb).vk("end command buffer")?;
        }
        Ok(())
    }

    /// Records one rendering scope over the target's colour and depth (both loaded as `load`,
    /// cleared to `clear` and 1; depth stored as `depth_store`) with the views' push constants,
    /// drawing `stage`.
    ///
    /// # Safety
    /// `cb` is recording outside a rendering scope; the target's images are in
    /// COLOR_ATTACHMENT_OPTIMAL and DEPTH_ATTACHMENT_OPTIMAL, their earlier writes made visible.
    pub(super) unsafe fn record_scene_rendering(
        &self,
        cb: vk::CommandBuffer,
        target: &Target,
        push_constants: &[u8],
        (load, depth_store): (vk::AttachmentLoadOp, vk::AttachmentStoreOp),
        clear: [f32; 4],
        stage: Stage,
    ) {
        let d = &self.device.device;
        let (area, viewport) = (target.area(), target.viewport());
        // Lavapipe (Mesa 22.3) draws the second view of instanced multiview draws partly into
        // the first layer: there each layer gets its own scope, with the one-view pipelines and
        // that view's matrix first.
        let per_layer = target.views > 1 && self.device.name().starts_with("llvmpipe");
        let scopes: Vec<(vk::ImageView, vk::ImageView, u32, usize)> = if per_layer {
            target
                .layers
                .iter()
                .enumerate()
                .map(|(i, [color, depth])| (*color, *depth, 1, i))
                .collect()
        } else {
            vec![(target.color.view, target.depth.view, target.views, 0)]
        };
        for (color_view, depth_view, views, first) in scopes {
            let color = [vk::RenderingAttachmentInfo::default()
                .image_view(color_view)
                .image_layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)
                .load_op(load)
                .store_op(vk::AttachmentStoreOp::STORE)
                .clear_value(vk::ClearValue {
                    color: vk::ClearColorValue { float32: clear },
                })];
            let depth = vk::RenderingAttachmentInfo::default()
                .image_view(depth_view)
                .image_layout(vk::ImageLayout::DEPTH_ATTACHMENT_OPTIMAL)
                .load_op(load)
                .store_op(depth_store)
                .clear_value(vk::ClearValue {
                    depth_stencil: vk::ClearDepthStencilValue { depth: 1.0, stencil: 0 },
                });
            let rendering = vk::RenderingInfo::default()
                .render_area(area)
                .layer_count(1)
                .view_mask((1 << views) - 1)
                .color_attachments(&color)
                .depth_attachment(&depth);
            // The matrices from this scope's first view on (clip_from_world[gl_ViewIndex]).
            let matrix = push_constants.len() / target.views.max(1) as usize;
            let mut constants = push_constants.get(first * matrix..).unwrap_or(push_constants).to_vec();
            constants.resize(push_constants.len(), 0);
            // SAFETY: per the function's contract.
            unsafe {
                d.cmd_begin_rendering(cb, &rendering);
                d.cmd_set_viewport(cb, 0, &[viewport]);
                d.cmd_set_scissor(cb, 0, &[area]);
                d.cmd_push_constants(cb, self.pipelines.layout, vk::ShaderStageFlags::VERTEX, 0, &constants);
                self.record_draws(cb, views, stage);
                d.cmd_end_rendering(cb);
            }
        }
    }

    /// Records the scene's draw calls of `stage` into `cb`, inside a rendering scope over `views`
    /// views whose push constants are set (it binds the sets). Every target (offscreen, window,
    /// XR) uses it.
    pub(super) fn record_draws(&self, cb: vk::CommandBuffer, views: u32, stage: Stage) {
        let d = &self.device.device;
        // SAFETY: `cb` is recording inside a rendering scope with this renderer's pipeline layout
        // and push constants; the pipelines, sets and buffers are live.
        unsafe {
            // One instanced draw per list and kind, the vertices made in the shaders: 6 per tile,
            // line and glyph quad, 36 per cube. Glyphs of both lists last: they blend over the rest.
            let p = &self.pipelines;
            let pipelines = [p.tiles(views), p.cubes(views), p.lines(views), p.glyphs(views)];
            let vertices = [6, 36, 6, 6];
            let opaque = LISTS
                .iter()
                .flat_map(|&l| [Kind::Tiles, Kind::Cubes, Kind::Lines].map(|k| (l, k)))
                .filter(|_| stage != Stage::Overlay);
            let glyphs = LISTS
                .iter()
                .map(|&l| (l, Kind::Glyphs))
                .filter(|_| stage != Stage::Opaque);
            let edges = match stage {
                Stage::All => Some(DrawPart::All),
                Stage::Overlay => Some(DrawPart::Highlight),
                Stage::Opaque => None,
            };
            let mut bound = None;
            // The bundled edges between the opaque kinds and the glyphs: they blend additively
            // over the first and are tested against their depth.
            for item in opaque.map(Some).chain([None]).chain(glyphs.map(Some)) {
                let Some((list, kind)) = item else {
                    if let Some(part) = edges
                        && self.bundle.record_draw(&self.device, cb, views, part)
                    {
                        // It bound its own set.
                        bound = None;
                    }
                    continue;
                };
                let instances = self.counts[list as usize][kind as usize];
                if instances == 0 {
                    continue;
                }
                if bound != Some(list) {
                    d.cmd_bind_descriptor_sets(
                        cb,
                        vk::PipelineBindPoint::GRAPHICS,
                        p.layout,
                        0,
                        &[self.slots[self.slot].sets[list as usize]],
                        &[],
                    );
                    bound = Some(list);
                }
                d.cmd_bind_pipeline(cb, vk::PipelineBindPoint::GRAPHICS, pipelines[kind as usize]);
                d.cmd_draw(cb, vertices[kind as usize], instances, 0, 0);
            }
        }
    }
}
