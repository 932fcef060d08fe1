//! The desktop window: a winit window and its swapchain presentation, as a value the app's frame
//! loop polls ([`DesktopWindow::pump`] with no wait while frames are drawn, then
//! [`DesktopWindow::present`]; vsync paces them). What the user does arrives as winit window
//! events, handed on untouched: turning them into the scene's input is not the window's job.
//!
//! The window pauses (draws nothing, and its pump waits for events) while it is minimized,
//! fully hidden or has no area.

use std::sync::Arc;
use std::time::Duration;

use winit::application::ApplicationHandler;
use winit::dpi::PhysicalSize;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::keyboard::{KeyCode, PhysicalKey};
use winit::platform::pump_events::EventLoopExtPumpEvents;
use winit::window::{Window, WindowId};

use super::camera::Camera;
use super::renderer::{Renderer, RendererConfig, RgbaImage, WindowFrame};
use super::{GfxError, Result, ValidationLog};

/// What the window shows and how long it stays open.
pub struct DesktopOptions {
    pub title: String,
    /// Initial inner size in physical pixels.
    pub size: (u32, u32),
    /// Close after this many presented frames (`None`: until the window is closed).
    pub frames: Option<u64>,
    /// Read every presented frame back, so [`DesktopOutcome::last_frame`] holds the last one.
    pub readback: bool,
    /// The display from the environment (WAYLAND_DISPLAY, else DISPLAY; `None`: neither is set).
    pub display: Option<String>,
}

/// How a desktop session ended.
pub struct DesktopOutcome {
    pub frames: u64,
    /// The last presented frame, with [`DesktopOptions::readback`].
    pub last_frame: Option<RgbaImage>,
    /// The validation log, read after the renderer (and so the device) was destroyed: it
    /// includes leaks reported at teardown.
    pub validation: Vec<String>,
}

/// What happened in the window, for the user (and tests) to hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DesktopEvent {
    /// Frame number `frame` (from 1) was presented at this size.
    Presented {
        frame: u64,
        width: u32,
        height: u32,
    },
    /// The window was minimized, hidden or has no area: no frames are drawn (and the pump
    /// waits for events) until it shows again.
    Paused {
        after_frame: u64,
    },
    Resumed,
}

/// What one [`DesktopWindow::pump`] found.
#[derive(Debug, Default)]
pub struct Pumped {
    /// The window events for the app's input (mouse, keys, focus, ...), in order.
    pub input: Vec<WindowEvent>,
    /// Pauses and resumes.
    pub changes: Vec<DesktopEvent>,
    /// Closed: by the user (the close button, Esc) or destroyed by someone else.
    pub close: bool,
}

/// The window, its renderer and its pumped event loop. Finish it ([`DesktopWindow::finish`]) to
/// read the last frame back and the validation log after teardown.
pub struct DesktopWindow {
    handler: Handler,
    event_loop: EventLoop<()>,
}

struct Handler {
    config: RendererConfig,
    title: String,
    size: (u32, u32),
    readback: bool,
    // The renderer before the window: its surface goes first.
    renderer: Option<Renderer>,
    window: Option<Arc<Window>>,
    log: Option<ValidationLog>,
    error: Option<GfxError>,
    /// The window has no area (a zero size, or no swapchain extent).
    no_area: bool,
    /// The window system says it is fully hidden.
    occluded: bool,
    /// The window manager has it minimized (X11: _NET_WM_STATE_HIDDEN; some window managers also
    /// keep presenting to an iconified window, so this is not left to the swapchain).
    minimized: bool,
    /// Any of the three.
    paused: bool,
    frames: u64,
    pumped: Pumped,
}

impl Handler {
    fn start(&mut self, event_loop: &ActiveEventLoop) -> Result<()> {
        let (w, h) = self.size;
        let attributes = Window::default_attributes()
            .with_title(self.title.clone())
            .with_inner_size(PhysicalSize::new(w, h));
        let window = Arc::new(
            event_loop
                .create_window(attributes)
                .map_err(|e| GfxError::Window(format!("cannot create the window: {}", winit_message(&e))))?,
        );
        let renderer = Renderer::new_windowed(&self.config, window.clone())?;
        tracing::info!(device = renderer.device_name(), "window renderer ready");
        self.log = Some(renderer.validation_log());
        self.window = Some(window);
        self.renderer = Some(renderer);
        Ok(())
    }

    /// Recomputes `paused` from its causes and reports a change.
    fn update_pause(&mut self) {
        let paused = self.no_area || self.occluded || self.minimized;
        if paused != self.paused {
            self.paused = paused;
            self.pumped.changes.push(if paused {
                DesktopEvent::Paused {
                    after_frame: self.frames,
                }
            } else {
                DesktopEvent::Resumed
            });
        }
    }
}

impl ApplicationHandler for Handler {
    fn resumed(&mut self, event_loop: &ActiveEventLoop) {
        if self.window.is_none()
            && self.error.is_none()
            && let Err(e) = self.start(event_loop)
        {
            self.error = Some(e);
        }
    }

    fn window_event(&mut self, _event_loop: &ActiveEventLoop, _id: WindowId, event: WindowEvent) {
        match event {
            // Destroyed: by someone else (the X server, a killed window manager); its surface is
            // gone, so stop drawing.
            WindowEvent::CloseRequested | WindowEvent::Destroyed => self.pumped.close = true,
            WindowEvent::Resized(size) => {
                self.no_area = size.width == 0 || size.height == 0;
                self.update_pause();
                if let Some(r) = &mut self.renderer {
                    r.window_resized();
                }
            }
            WindowEvent::Occluded(hidden) => {
                self.occluded = hidden;
                self.update_pause();
            }
            WindowEvent::KeyboardInput { event, .. }
                if event.physical_key == PhysicalKey::Code(KeyCode::Escape) && event.state.is_pressed() =>
            {
                self.pumped.close = true
            }
            WindowEvent::RedrawRequested => {}
            other => self.pumped.input.push(other),
        }
    }
}

impl DesktopWindow {
    /// Opens the window with its renderer on the environment's display.
    pub fn open(config: &RendererConfig, options: &DesktopOptions) -> Result<DesktopWindow> {
        // winit's own message names its source file; say it plainly.
        if cfg!(all(unix, not(target_os = "macos"))) && options.display.is_none() {
            return Err(GfxError::Window(
                "no display to open it on: neither DISPLAY nor WAYLAND_DISPLAY is set (run it in a desktop session, or under Xvfb)".into(),
            ));
        }
        let event_loop = EventLoop::new().map_err(|e| {
            let display = options.display.clone().unwrap_or_default();
            GfxError::Window(format!(
                "cannot connect to the display `{display}`: {}",
                winit_message(&e)
            ))
        })?;
        let mut window = DesktopWindow {
            handler: Handler {
                config: config.clone(),
                title: options.title.clone(),
                size: options.size,
                readback: options.readback,
                renderer: None,
                window: None,
                log: None,
                error: None,
                no_area: false,
                occluded: false,
                minimized: false,
                paused: false,
                frames: 0,
                pumped: Pumped::default(),
            },
            event_loop,
        };
        // The first pump delivers `resumed`, where the window and renderer are made.
        for _ in 0..100 {
            window.pump_for(Some(Duration::ZERO));
            if let Some(e) = window.handler.error.take() {
                return Err(e);
            }
            if window.handler.renderer.is_some() {
                return Ok(window);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(GfxError::Window("the window was not created".into()))
    }

    /// Handles the pending window events: at once while frames are drawn, else (paused) after
    /// waiting for some. Returns what happened since the last call.
    pub fn pump(&mut self) -> Pumped {
        let timeout = if self.handler.paused {
            None
        } else {
            Some(Duration::ZERO)
        };
        self.pump_for(timeout)
    }

    fn pump_for(&mut self, timeout: Option<Duration>) -> Pumped {
        let _ = self.event_loop.pump_app_events(timeout, &mut self.handler);
        // Checked after every batch of events: a window manager's minimize (and restore) changes
        // a window property, which is an event, but winit reports none for it.
        if let Some(w) = self.handler.window.clone() {
            let was_minimized = self.handler.minimized;
            self.handler.minimized = w.is_minimized() == Some(true);
            self.handler.update_pause();
            // Restored: what the server sent before answering that query (a resize while
            // minimized) has arrived by now; handle it before a frame is drawn at the old size.
            if was_minimized && !self.handler.minimized {
                let _ = self.event_loop.pump_app_events(Some(Duration::ZERO), &mut self.handler);
            }
        }
        std::mem::take(&mut self.handler.pumped)
    }

    /// Nothing is drawn: minimized, hidden or without area.
    pub fn paused(&self) -> bool {
        self.handler.paused
    }

    /// The window's inner size in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.handler.window.as_ref().map_or(self.handler.size, |w| {
            let s = w.inner_size();
            (s.width, s.height)
        })
    }

    /// The renderer drawing into the window: upload the scene to it before [`DesktopWindow::present`].
    pub fn renderer(&mut self) -> Option<&mut Renderer> {
        self.handler.renderer.as_mut()
    }

    /// Draws what was uploaded, seen by `camera`, and presents it: [`DesktopEvent::Presented`],
    /// or [`DesktopEvent::Paused`] when the window turned out to have no area (it waits for a
    /// resize), or nothing (the swapchain is recreated on the next frame).
    pub fn present(&mut self, camera: &Camera) -> Result<Option<DesktopEvent>> {
        let h = &mut self.handler;
        let Some(renderer) = h.renderer.as_mut() else {
            return Ok(None);
        };
        match renderer.render_to_window(camera, h.readback)? {
            WindowFrame::Presented { width, height } => {
                h.frames += 1;
                Ok(Some(DesktopEvent::Presented {
                    frame: h.frames,
                    width,
                    height,
                }))
            }
            WindowFrame::NoArea => {
                h.no_area = true;
                h.update_pause();
                Ok(h.pumped.changes.pop())
            }
            WindowFrame::OutOfDate | WindowFrame::NotReady => Ok(None),
        }
    }

    /// Presented frames so far.
    pub fn frames(&self) -> u64 {
        self.handler.frames
    }

    /// Reads the last frame back, then destroys the renderer (waits idle; swapchain, surface,
    /// device) and the window.
    pub fn finish(mut self) -> DesktopOutcome {
        let h = &mut self.handler;
        let mut last_frame = None;
        if let Some(renderer) = h.renderer.take() {
            if h.readback {
                last_frame = renderer.last_window_frame();
            }
            drop(renderer);
        }
        h.window = None;
        DesktopOutcome {
            frames: h.frames,
            last_frame,
            validation: h.log.as_ref().map(|l| l.messages()).unwrap_or_default(),
        }
    }
}

/// A winit error's text without the winit source location its OS errors start with.
fn winit_message(e: &impl std::fmt::Display) -> String {
    let text = e.to_string();
    match text.strip_prefix("os error at ").and_then(|rest| rest.split_once(": ")) {
        Some((_location, message)) => message.to_owned(),
        None => text,
    }
}
