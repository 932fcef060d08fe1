//! The descriptor set layout, pipeline layout and graphics pipelines (tiles, cubes, lines, glyphs).

use std::io::Cursor;

use ash::vk;

use super::device::Device;
use super::{COLOR_FORMAT, DEPTH_FORMAT, GfxError, Result, VkContext};

/// Size of the push constants: `clip_from_world[2]` (shaders/common.glsl).
pub const PUSH_CONSTANT_BYTES: u32 = 2 * 64;

/// Storage buffer bindings of the one descriptor set.
pub const BINDING_VALUES: u32 = 0;
pub const BINDING_TILES: u32 = 1;
pub const BINDING_CUBES: u32 = 2;
pub const BINDING_LINES: u32 = 3;
pub const BINDING_GLYPHS: u32 = 4;
/// The glyph atlas (combined image sampler).
pub const BINDING_ATLAS: u32 = 5;

/// Decodes embedded SPIR-V (`include_bytes!` gives no u32 alignment; read_spv copies).
fn spirv(name: &str, bytes: &[u8]) -> Result<Vec<u32>> {
    ash::util::read_spv(&mut Cursor::new(bytes)).map_err(|e| GfxError::Invalid(format!("shader {name}: {e}")))
}

/// Shader modules made from embedded SPIR-V (name, bytes), for building pipelines; destroyed
/// when dropped (pipelines keep what they need of them).
pub(crate) struct ShaderModules<'a, const N: usize> {
    device: &'a Device,
    pub modules: [vk::ShaderModule; N],
}

impl<'a, const N: usize> ShaderModules<'a, N> {
    pub fn new(device: &'a Device, shaders: [(&str, &[u8]); N]) -> Result<Self> {
        // Dropped on error: the modules made so far are destroyed.
        let mut made = ShaderModules {
            device,
            modules: [vk::ShaderModule::null(); N],
        };
        for (module, (name, bytes)) in made.modules.iter_mut().zip(shaders) {
            let code = spirv(name, bytes)?;
            let info = vk::ShaderModuleCreateInfo::default().code(&code);
            // SAFETY: valid create info on a live device; the code is SPIR-V compiled by glslc
            // for Vulkan 1.3.
            *module = unsafe { device.device.create_shader_module(&info, None) }.vk("create shader module")?;
            device.name_object(*module, name);
        }
        Ok(made)
    }
}

impl<const N: usize> Drop for ShaderModules<'_, N> {
    fn drop(&mut self) {
        for m in self.modules {
            // SAFETY: only pipeline creation used them, and it is done; null handles are ignored.
            unsafe { self.device.device.destroy_shader_module(m, None) };
        }
    }
}

/// Workgroups for `n` invocations of `local` each: x at most 65535 (the least every device
/// allows), the rest in y (the shaders fold y back into one index).
pub(crate) fn groups_for(n: u64, local: u64) -> (u32, u32) {
    let groups = n.div_ceil(local).max(1);
    let x = groups.min(65535);
    (x as u32, groups.div_ceil(x) as u32)
}

/// A compute pipeline of `module` with `layout`, its specialization constants 0, 1, … set to
/// `spec` (32-bit each), named `{name} pipeline`.
pub(crate) fn compute_pipeline(
    device: &Device,
    layout: vk::PipelineLayout,
    module: vk::ShaderModule,
    spec: &[u32],
    name: &str,
) -> Result<vk::Pipeline> {
    let entries: Vec<vk::SpecializationMapEntry> = (0..spec.len() as u32)
        .map(|i| {
            vk::SpecializationMapEntry::default()
                .constant_id(i)
                .offset(i * 4)
                .size(4)
        })
        .collect();
    let data: &[u8] = bytemuck::cast_slice(spec);
    let specialization = vk::SpecializationInfo::default().map_entries(&entries).data(data);
    let mut stage = vk::PipelineShaderStageCreateInfo::default()
        .stage(vk::ShaderStageFlags::COMPUTE)
        .module(module)
        .name(c"main");
    if !spec.is_empty() {
        stage = stage.specialization_info(&specialization);
    }
    let info = vk::ComputePipelineCreateInfo::default().stage(stage).layout(layout);
    // SAFETY: valid create info; the module and layout are live.
    let pipeline = unsafe {
        device
            .device
            .create_compute_pipelines(vk::PipelineCache::null(), &[info], None)
    }
    .map_err(|(_, result)| GfxError::Vk {
        what: "create compute pipeline",
        result,
    })?[0];
    device.name_object(pipeline, &format!("{name} pipeline"));
    Ok(pipeline)
}

/// Pipelines for views 1 and 2: Vulkan requires a pipeline's view mask to equal the one of the
/// rendering it is used in, so mono (0b1) and stereo (0b11) each get one, from the same shaders.
/// Null handles until built; destroying null handles is a no-op.
#[derive(Default)]
pub struct Pipelines {
    pub set_layout: vk::DescriptorSetLayout,
    pub layout: vk::PipelineLayout,
    tiles: [vk::Pipeline; 2],
    cubes: [vk::Pipeline; 2],
    lines: [vk::Pipeline; 2],
    glyphs: [vk::Pipeline; 2],
}

/// How a pipeline writes its fragments.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Blend {
    /// Opaque, writes depth.
    Opaque,
    /// Alpha-blended over what is drawn, depth-tested but not written (drawn last).
    Over,
    /// Premultiplied colour added to what is drawn (the sum is the same in any order),
    /// depth-tested but not written.
    Additive,
}

/// The attachments a pipeline draws into.
#[derive(Clone, Copy, PartialEq)]
pub(crate) struct PassFormats {
    pub color: vk::Format,
    /// None: no depth attachment (nor test).
    pub depth: Option<vk::Format>,
}

/// The scene pass's attachments.
pub(crate) const SCENE_PASS: PassFormats = PassFormats {
    color: COLOR_FORMAT,
    depth: Some(DEPTH_FORMAT),
};

impl Pipelines {
    pub fn new(device: &Device) -> Result<Pipelines> {
        let mut p = Pipelines::default();
        match p.build(device) {
            Ok(()) => Ok(p),
            Err(e) => {
                // SAFETY: nothing built so far has been used.
                unsafe { p.destroy(device) };
                Err(e)
            }
        }
    }

    /// The tile pipeline for `views` (1 or 2) views.
    pub fn tiles(&self, views: u32) -> vk::Pipeline {
        self.tiles[views as usize - 1]
    }

    pub fn cubes(&self, views: u32) -> vk::Pipeline {
        self.cubes[views as usize - 1]
    }

    pub fn lines(&self, views: u32) -> vk::Pipeline {
        self.lines[views as usize - 1]
    }

    pub fn glyphs(&self, views: u32) -> vk::Pipeline {
        self.glyphs[views as usize - 1]
    }

    fn build(&mut self, device: &Device) -> Result<()> {
        let d = &device.device;
        let stages = vk::ShaderStageFlags::VERTEX | vk::ShaderStageFlags::FRAGMENT;
        let bindings = [
            BINDING_VALUES,
            BINDING_TILES,
            BINDING_CUBES,
            BINDING_LINES,
            BINDING_GLYPHS,
            BINDING_ATLAS,
        ]
        .map(|b| {
            let ty = if b == BINDING_ATLAS {
                vk::DescriptorType::COMBINED_IMAGE_SAMPLER
            } else {
                vk::DescriptorType::STORAGE_BUFFER
            };
            vk::DescriptorSetLayoutBinding::default()
                .binding(b)
                .descriptor_type(ty)
                .descriptor_count(1)
                .stage_flags(stages)
        });
        let info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: valid create info on a live device (for every call below as well).
        self.set_layout = unsafe { d.create_descriptor_set_layout(&info, None) }.vk("create descriptor set layout")?;
        device.name_object(self.set_layout, "scene set layout");
        let push = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::VERTEX)
            .size(PUSH_CONSTANT_BYTES)];
        let set_layouts = [self.set_layout];
        let info = vk::PipelineLayoutCreateInfo::default()
            .set_layouts(&set_layouts)
            .push_constant_ranges(&push);
        // SAFETY: as above.
        self.layout = unsafe { d.create_pipeline_layout(&info, None) }.vk("create pipeline layout")?;
        device.name_object(self.layout, "scene pipeline layout");

        let shaders = ShaderModules::new(
            device,
            [
                ("tile.vert", &include_bytes!("../../shaders/tile.vert.spv")[..]),
                ("tile.frag", &include_bytes!("../../shaders/tile.frag.spv")[..]),
                ("cube.vert", &include_bytes!("../../shaders/cube.vert.spv")[..]),
                ("cube.frag", &include_bytes!("../../shaders/cube.frag.spv")[..]),
                ("line.vert", &include_bytes!("../../shaders/line.vert.spv")[..]),
                ("line.frag", &include_bytes!("../../shaders/line.frag.spv")[..]),
                ("glyph.vert", &include_bytes!("../../shaders/glyph.vert.spv")[..]),
                ("glyph.frag", &include_bytes!("../../shaders/glyph.frag.spv")[..]),
            ],
        )?;
        let modules = shaders.modules;
        for views in 1..=2u32 {
            let i = views as usize - 1;
            self.tiles[i] = self.pipeline(device, [modules[0], modules[1]], views, Blend::Opaque, "tiles")?;
            self.cubes[i] = self.pipeline(device, [modules[2], modules[3]], views, Blend::Opaque, "cubes")?;
            self.lines[i] = self.pipeline(device, [modules[4], modules[5]], views, Blend::Opaque, "lines")?;
            self.glyphs[i] = self.pipeline(device, [modules[6], modules[7]], views, Blend::Over, "glyphs")?;
        }
        Ok(())
    }

    fn pipeline(
        &self,
        device: &Device,
        [vert, frag]: [vk::ShaderModule; 2],
        views: u32,
        blend: Blend,
        name: &str,
    ) -> Result<vk::Pipeline> {
        let stages = [
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::VERTEX)
                .module(vert)
                .name(c"main"),
            vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::FRAGMENT)
                .module(frag)
                .name(c"main"),
        ];
        graphics_pipeline(device, self.layout, &stages, (SCENE_PASS, views), blend, name)
    }

    /// # Safety
    /// The GPU must be done with the pipelines; `device` must be the one they were made with.
    pub unsafe fn destroy(&mut self, device: &Device) {
        let d = &device.device;
        // SAFETY: per the contract; null handles are ignored.
        unsafe {
            for p in [self.tiles, self.cubes, self.lines, self.glyphs].iter().flatten() {
                d.destroy_pipeline(*p, None);
            }
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
        }
        *self = Pipelines::default();
    }
}

/// A triangle-list pipeline for dynamic rendering into `formats` (the scene pass's colour + depth
/// target, or another), `views` views by multiview (0: one layer, no multiview), no vertex input:
/// geometry comes from gl_VertexIndex and storage buffers. Named `{name} pipeline (N views)`.
pub(crate) fn graphics_pipeline(
    device: &Device,
    layout: vk::PipelineLayout,
    stages: &[vk::PipelineShaderStageCreateInfo],
    (formats, views): (PassFormats, u32),
    blend: Blend,
    name: &str,
) -> Result<vk::Pipeline> {
    // Geometry comes from gl_VertexIndex and storage buffers: no vertex input.
    let vertex_input = vk::PipelineVertexInputStateCreateInfo::default();
    let assembly = vk::PipelineInputAssemblyStateCreateInfo::default().topology(vk::PrimitiveTopology::TRIANGLE_LIST);
    let viewport = vk::PipelineViewportStateCreateInfo::default()
        .viewport_count(1)
        .scissor_count(1);
    // No culling: tiles are seen from both sides, and the y flip in clip_from_view reverses
    // the winding anyway.
    let raster = vk::PipelineRasterizationStateCreateInfo::default()
        .polygon_mode(vk::PolygonMode::FILL)
        .cull_mode(vk::CullModeFlags::NONE)
        .line_width(1.0);
    let multisample =
        vk::PipelineMultisampleStateCreateInfo::default().rasterization_samples(vk::SampleCountFlags::TYPE_1);
    let depth = vk::PipelineDepthStencilStateCreateInfo::default()
        .depth_test_enable(formats.depth.is_some())
        .depth_write_enable(formats.depth.is_some() && blend == Blend::Opaque)
        .depth_compare_op(vk::CompareOp::LESS);
    let attachment = vk::PipelineColorBlendAttachmentState::default().color_write_mask(vk::ColorComponentFlags::RGBA);
    let attachments = [match blend {
        Blend::Opaque => attachment,
        Blend::Over => attachment
            .blend_enable(true)
            .src_color_blend_factor(vk::BlendFactor::SRC_ALPHA)
            .dst_color_blend_factor(vk::BlendFactor::ONE_MINUS_SRC_ALPHA)
            .color_blend_op(vk::BlendOp::ADD)
            .src_alpha_blend_factor(vk::BlendFactor::ONE)
            .dst_alpha_blend_factor(vk::BlendFactor::ONE_MINUS_SRC_ALPHA)
            .alpha_blend_op(vk::BlendOp::ADD),
        Blend::Additive => attachment
            .blend_enable(true)
            .src_color_blend_factor(vk::BlendFactor::ONE)
            .dst_color_blend_factor(vk::BlendFactor::ONE)
            .color_blend_op(vk::BlendOp::ADD)
            .src_alpha_blend_factor(vk::BlendFactor::ZERO)
            .dst_alpha_blend_factor(vk::BlendFactor::ONE)
            .alpha_blend_op(vk::BlendOp::ADD),
    }];
    let blend = vk::PipelineColorBlendStateCreateInfo::default().attachments(&attachments);
    let dynamic_states = [vk::DynamicState::VIEWPORT, vk::DynamicState::SCISSOR];
    let dynamic = vk::PipelineDynamicStateCreateInfo::default().dynamic_states(&dynamic_states);
    let colors = [formats.color];
    let mut rendering = vk::PipelineRenderingCreateInfo::default()
        .view_mask((1 << views) - 1)
        .color_attachment_formats(&colors)
        .depth_attachment_format(formats.depth.unwrap_or(vk::Format::UNDEFINED));
    let info = vk::GraphicsPipelineCreateInfo::default()
        .stages(stages)
        .vertex_input_state(&vertex_input)
        .input_assembly_state(&assembly)
        .viewport_state(&viewport)
        .rasterization_state(&raster)
        .multisample_state(&multisample)
        .depth_stencil_state(&depth)
        .color_blend_state(&blend)
        .dynamic_state(&dynamic)
        .layout(layout)
        .push_next(&mut rendering);
    // SAFETY: valid create info; the modules and layout are live.
    let pipeline = unsafe {
        device
            .device
            .create_graphics_pipelines(vk::PipelineCache::null(), &[info], None)
    }
    .map_err(|(_, result)| GfxError::Vk {
        what: "create graphics pipeline",
        result,
    })?[0];
    let views = match views {
        0 => "one layer".to_owned(),
        1 => "1 view".to_owned(),
        n => format!("{n} views"),
    };
    device.name_object(pipeline, &format!("{name} pipeline ({views})"));
    Ok(pipeline)
}
