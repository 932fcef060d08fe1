//! The XR mirror window (`netwalk run --xr --mirror`): the left eye on the desktop, e.g. for a
//! classroom projector. It has no event loop of its own: the XR frame loop pumps its events once
//! per frame ([`MirrorWindow::pump`]), and the renderer blits the left eye into it in the XR
//! frame's submission ([`super::Renderer::render_to_xr_image`]).

use std::sync::Arc;
use std::time::Duration;

use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::platform::pump_events::EventLoopExtPumpEvents;
use winit::window::{Window, WindowId};

use super::{GfxError, Result};

/// What happened to the window since the last pump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MirrorEvents {
    /// The user (or the window manager) asked to close it.
    pub close_requested: bool,
    pub resized: bool,
}

struct Handler {
    title: String,
    size: (u32, u32),
    window: Option<Arc<Window>>,
    error: Option<String>,
    events: MirrorEvents,
}

impl ApplicationHandler for Handler {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attributes = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(PhysicalSize::new(self.size.0, self.size.1));
        match event_loop.create_window(attributes) {
            Ok(w) => self.window = Some(Arc::new(w)),
            Err(e) => self.error = Some(format!("cannot create the mirror window: {e}")),
        }
    }

    fn window_event(&mut self, _event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            WindowEvent::CloseRequested | WindowEvent::Destroyed => self.events.close_requested = true,
            WindowEvent::Resized(_) => self.events.resized = true,
            _ => {}
        }
    }
}

/// The window and its (pumped) event loop. Drop it after the renderer that draws into it.
pub struct MirrorWindow {
    handler: Handler,
    event_loop: EventLoop<()>,
}

impl MirrorWindow {
    /// Opens a `size` window titled `title` on the desktop's display (`display`: WAYLAND_DISPLAY,
    /// else DISPLAY, from the environment; `None`: neither is set).
    pub fn open(title: &str, size: (u32, u32), display: Option<&str>) -> Result<MirrorWindow> {
        if display.is_none() {
            return Err(GfxError::Window(
                "no display for the mirror window: neither DISPLAY nor WAYLAND_DISPLAY is set".into(),
            ));
        }
        let event_loop =
            EventLoop::new().map_err(|e| GfxError::Window(format!("cannot connect to the display: {e}")))?;
        let mut mirror = MirrorWindow {
            handler: Handler {
                title: title.to_string(),
                size,
                window: None,
                error: None,
                events: MirrorEvents::default(),
            },
            event_loop,
        };
        // The first pump delivers `resumed`, where the window is made.
        for _ in 0..100 {
            mirror.pump();
            if let Some(e) = mirror.handler.error.take() {
                return Err(GfxError::Window(e));
            }
            if mirror.handler.window.is_some() {
                return Ok(mirror);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(GfxError::Window("the mirror window was not created".into()))
    }

    pub fn window(&self) -> Option<Arc<Window>> {
        self.handler.window.clone()
    }

    /// Handles the pending window events without waiting; returns what happened since the last call.
    pub fn pump(&mut self) -> MirrorEvents {
        let _ = self.event_loop.pump_app_events(Some(Duration::ZERO), &mut self.handler);
        std::mem::take(&mut self.handler.events)
    }
}
