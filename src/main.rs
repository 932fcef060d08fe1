//! The `netwalk` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use netwalk::cli::run::{Mode, RunCommand, RunOptions};
use netwalk::cli::snapshot::View;
use netwalk::cli::{self, AppInput, Env, InputChoice};
use netwalk::{bench, gfx};

#[derive(Parser)]
#[command(
    name = "netwalk",
    version,
    about = "Walk through a neural network: VR, desktop, or PNG snapshots"
)]
struct Cli {
    /// Without a command: the demo network in a headset when an OpenXR runtime and headset are
    /// there, else in a desktop window, else (no display) a PNG overview.
    #[command(subcommand)]
    command: Option<Command>,
    /// An ONNX model's dynamic input dimensions, C,H,W (or N); a dynamic batch is always 1.
    #[arg(long, global = true, value_parser = cli::import::parse_input_shape)]
    input_shape: Option<cli::import::InputShape>,
}

#[derive(Subcommand)]
enum Command {
    /// List the layers: op, output shape, parameters, activations; totals.
    Info {
        /// model.json or a folder holding one (default: the bundled MNIST demo)
        model: Option<PathBuf>,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Compute every layer's activations for one input and save them as safetensors.
    Activations {
        model: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Output safetensors: one f32 tensor per layer, named by the layer.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Explain one neuron: value, pre-activation, bias and its inputs (JSON on stdout).
    Neuron {
        model: Option<PathBuf>,
        #[command(flatten)]
        input: InputArgs,
        /// Layer name.
        #[arg(long)]
        layer: String,
        /// Neuron index: c,y,x for maps or i for vectors.
        #[arg(long, value_delimiter = ',')]
        index: Vec<usize>,
        /// How many inputs to list (largest |contribution| first); 0 = all.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// Class names, one a line, in place of the model's (shown for the output layer).
        #[arg(long)]
        classes: Option<PathBuf>,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Accuracy on the model's held-out samples (or on a folder of images).
    Eval {
        model: Option<PathBuf>,
        /// A folder of images, one subfolder per class (torchvision's ImageFolder).
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Class names, one a line, in place of the model's (subfolders are matched to them).
        #[arg(long)]
        classes: Option<PathBuf>,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Train the model from scratch (deterministic for a seed) and write weights + checkpoint timeline.
    Train {
        model: Option<PathBuf>,
        #[arg(long, default_value_t = 8)]
        epochs: usize,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output folder (model.json, weights.safetensors, epochs/, samples.safetensors).
        #[arg(long, default_value = "mnist-cnn")]
        out: PathBuf,
        /// Training set (images + labels); default: the bundled MNIST training digits.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 64)]
        batch: usize,
        #[arg(long, default_value_t = 2e-3)]
        lr: f64,
    },
    /// Render the network for one input to a PNG, offscreen (no window or headset needed).
    Snapshot {
        model: Option<PathBuf>,
        /// Output PNG.
        #[arg(long)]
        out: PathBuf,
        /// Image size WxH (of each eye with --stereo).
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        #[command(flatten)]
        input: AppInput,
        /// What to frame: overview (the whole network), input, output, or a layer's name (the
        /// block showing it, from the front).
        #[arg(long, default_value = "overview", conflicts_with = "eye")]
        view: String,
        /// Camera position x,y,z in meters (the viewer stands at the origin, eyes at 1.4 m,
        /// looking down -Z); default: see --view.
        #[arg(long, value_parser = parse_vec3, requires = "look", allow_hyphen_values = true)]
        eye: Option<glam::Vec3>,
        /// The point x,y,z the camera looks at.
        #[arg(long, value_parser = parse_vec3, requires = "eye", allow_hyphen_values = true)]
        look: Option<glam::Vec3>,
        /// Render both eyes (64 mm apart) in one multiview pass; they are written side by side.
        #[arg(long)]
        stereo: bool,
        /// Put each layer's feature maps in one row instead of a grid.
        #[arg(long)]
        linear: bool,
        /// Play this input script (the `replay` format) first, then render: what it hovered,
        /// selected, moved or folded shows.
        #[arg(long)]
        script: Option<PathBuf>,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Walk through the network: in a headset (OpenXR) when there is one, else in a desktop window
    /// (left-drag orbits, the wheel zooms, W/A/S/D move, Q/E down/up, R resets the view, Esc
    /// closes), else (no display) a PNG overview.
    Run {
        model: Option<PathBuf>,
        /// Only in a headset (OpenXR); fail when there is none.
        #[arg(long, conflicts_with = "desktop")]
        xr: bool,
        /// Only in a desktop window.
        #[arg(long)]
        desktop: bool,
        /// XR: also show the left eye in a desktop window (closing it ends the session).
        #[arg(long, requires = "xr")]
        mirror: bool,
        /// XR: log frame timing (CPU time per frame, missed frames) when the session ends.
        #[arg(long)]
        stats: bool,
        /// XR: load the controller binding files from this folder (default: the built-in copies
        /// of xr-config/; also NETWALK_XR_CONFIG).
        #[arg(long)]
        xr_config: Option<PathBuf>,
        #[command(flatten)]
        input: AppInput,
        /// Initial window size WxH in pixels.
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        /// Close the window after this many presented frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Save the last presented frame as a PNG when the window closes (XR: frame --frames,
        /// both eyes side by side, read back from the runtime's swapchain image).
        #[arg(long)]
        screenshot: Option<PathBuf>,
        /// XR: lay the network out for a play area of WxD meters instead of the runtime's (or, when
        /// it reports none, 3x3).
        #[arg(long, value_parser = parse_play_area)]
        play_area: Option<glam::Vec2>,
        /// XR: merge this script's buttons and thumbsticks (see `netwalk replay`) with the real
        /// controller poses; its time starts at the first frame, and every press shows in at least
        /// one frame (however slow the frames).
        #[arg(long)]
        script: Option<PathBuf>,
        /// Follow an external training run: append each new checkpoint file that appears in this
        /// folder to the timeline (write `NAME.safetensors.tmp`, then rename it to
        /// `NAME.safetensors`; see the README).
        #[arg(long, conflicts_with = "train")]
        watch: Option<PathBuf>,
        /// Train the model from scratch in the background (on the bundled MNIST training digits)
        /// and watch it learn: a new checkpoint joins the timeline every 25 steps.
        #[arg(long)]
        train: bool,
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Run the scene with scripted input (no GPU, no window) and write its final state as JSON.
    Replay {
        model: Option<PathBuf>,
        /// Input script (JSON events: t, hand, aim, select, grab, fold, layout, menu, ...).
        #[arg(long)]
        script: PathBuf,
        /// Where to write the final state.
        #[arg(long)]
        state_out: PathBuf,
        #[command(flatten)]
        input: AppInput,
        /// Frames per second the systems run at.
        #[arg(long, default_value_t = 90.0)]
        fps: f32,
        /// Start on a checkpoint's weights (the script scrubs from there).
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Write an ONNX model (or a folder of same-architecture .onnx checkpoints) as a
    /// netwalk-model/1 folder.
    Import(cli::import::ImportArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Forward-pass time of a model (median, p99), and onnxruntime's on the same model if installed.
    Forward {
        model: Option<PathBuf>,
        /// Use a synthetic model with random weights: resnet18, resnet50, mnist-cnn.
        #[arg(long)]
        synthetic: Option<String>,
        #[arg(long, default_value_t = 200)]
        iters: usize,
        /// Skip the onnxruntime comparison.
        #[arg(long)]
        no_ort: bool,
        /// Also print the time of each layer (mean over the iterations).
        #[arg(long)]
        per_layer: bool,
    },
    /// Offscreen frame time: GPU (timestamp queries) and CPU record time (median, p99) of the
    /// network and of an empty frame (clear only) at the same size.
    Render {
        model: Option<PathBuf>,
        /// Use a synthetic model with random weights: resnet18, resnet50, mnist-cnn.
        #[arg(long)]
        synthetic: Option<String>,
        #[arg(long, default_value_t = 200)]
        frames: usize,
        /// Image size WxH (of each eye with --stereo); default: Quest 3 per eye.
        #[arg(long, default_value = "2064x2208", value_parser = parse_size)]
        size: (u32, u32),
        /// Both eyes in one multiview pass.
        #[arg(long)]
        stereo: bool,
    },
    /// Frame time of the app (scene systems, upload, offscreen render) on the demo while it trains
    /// live in the background, as `netwalk run --train` does, against the same frames without
    /// training (median, p99); and with the network rerun in the frame instead of on the worker.
    Train {
        /// Seconds each run lasts (frames as fast as they go).
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
        /// Rounds of the three runs, interleaved (shared machines drift).
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Image size WxH (of each eye with --stereo).
        #[arg(long, default_value = "1280x720", value_parser = parse_size)]
        size: (u32, u32),
        /// Both eyes in one multiview pass.
        #[arg(long)]
        stereo: bool,
        /// Training steps between published checkpoints.
        #[arg(long, default_value_t = 10)]
        every: usize,
    },
    /// Edge bundling of the dense layers on the GPU (timestamp queries): time per full recompute
    /// and per incremental update (new weights), edges bundled; and the frame time with the
    /// bundled edges drawn against without.
    Bundle {
        model: Option<PathBuf>,
        /// Use a synthetic model with random weights: mlp-784-81-49-10 (68k edges),
        /// mlp-1024-1024-10 (1.06M edges), any mlp-N0-N1-..., or those of `bench forward`.
        #[arg(long)]
        synthetic: Option<String>,
        /// Runs of each (after a few warm-up runs).
        #[arg(long, default_value_t = 20)]
        iters: usize,
        /// Frames drawn for the frame time (0: skip it).
        #[arg(long, default_value_t = 20)]
        frames: usize,
        /// Frame size WxH for the frame time (of each eye with --stereo); default: Quest 3 per eye.
        #[arg(long, default_value = "2064x2208", value_parser = parse_size)]
        size: (u32, u32),
        /// Time the frame for both eyes (64 mm apart) in one multiview pass.
        #[arg(long)]
        stereo: bool,
        /// Resolution scales to draw the edges at, comma-separated (1: full resolution, in the
        /// scene pass; N: 1/N on each side, then added to the scene); default: the one the app
        /// picks for this many edges.
        #[arg(long, value_delimiter = ',')]
        edge_scale: Vec<u32>,
    },
}

#[derive(Args)]
struct CheckpointArg {
    /// Use a checkpoint's weights (label or index) instead of the final ones.
    #[arg(long)]
    checkpoint: Option<String>,
}

#[derive(Args)]
#[group(required = true, multiple = false)]
struct InputArgs {
    /// A PNG or JPEG (any size: converted, resized and centre-cropped to the model's input; see
    /// the README), or a safetensors file with a tensor `input` of the input shape.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Index into the model's bundled samples.
    #[arg(long)]
    sample: Option<usize>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NETWALK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    // `netwalk info X | head`: a closed stdout ends the process quietly, as for other command-line
    // tools, instead of Rust's default (SIGPIPE ignored, so println! panics on the broken pipe).
    // SAFETY: called before any other thread exists; SIG_DFL is a valid disposition for SIGPIPE.
    #[cfg(unix)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain joined, so the file and layer/tensor stay in view; a cause whose
            // text its parent already shows (NnError includes its source) is not repeated.
            let mut msg = String::new();
            for cause in e.chain() {
                let text = cause.to_string();
                if !msg.contains(&text) {
                    if !msg.is_empty() {
                        msg.push_str(": ");
                    }
                    msg.push_str(&text);
                }
            }
            let msg = msg.replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

impl InputArgs {
    fn choice(&self) -> InputChoice {
        InputChoice {
            file: self.input.clone(),
            sample: self.sample,
            classes: None,
        }
    }
}

// Long (~160 lines) for a reason: one match arm per command, each only unpacking its arguments
// and calling its body in src/cli or src/bench.
fn run(cli: Cli) -> Result<()> {
    // The environment, read once here (the demo's cache folder aside: see cli::env).
    let env = Env::read();
    cli::set_input_shape(cli.input_shape.clone().map(|s| s.0));
    let Some(command) = cli.command else {
        let app = cli::build_app(None, &AppInput::default(), None)?;
        let options = RunOptions {
            xr_config: env.xr_config.clone(),
            ..RunOptions::default()
        };
        return cli::run::run_any(app, Mode::Auto, &options, &env);
    };
    match command {
        Command::Import(args) => cli::import::import(&args, cli::input_shape()),
        Command::Info { model, ckpt } => cli::model::info(&cli::load_model(model)?, ckpt.checkpoint.as_deref()),
        Command::Activations {
            model,
            input,
            out,
            ckpt,
        } => {
            let (model, _, acts) = cli::run_on_input(model, &input.choice(), ckpt.checkpoint.as_deref())?;
            cli::model::write_activations(&model, &acts, &out)
        }
        Command::Neuron {
            model,
            input,
            layer,
            index,
            top,
            classes,
            ckpt,
        } => {
            let input = InputChoice {
                classes,
                ..input.choice()
            };
            cli::model::neuron(model, &input, &layer, &index, top, ckpt.checkpoint.as_deref())
        }
        Command::Eval {
            model,
            inputs,
            classes,
            ckpt,
        } => cli::model::eval(model, inputs.as_deref(), classes.as_deref(), ckpt.checkpoint.as_deref()),
        Command::Train {
            model,
            epochs,
            seed,
            out,
            data,
            batch,
            lr,
        } => cli::model::train(model, epochs, seed, out, data, batch, lr),
        Command::Snapshot {
            model,
            out,
            size,
            input,
            view,
            eye,
            look,
            stereo,
            linear,
            script,
            ckpt,
        } => {
            // The script first: a bad one fails before any work.
            let script = script.as_deref().map(netwalk::input::Script::load).transpose()?;
            let mut app = cli::build_app(model, &input, ckpt.checkpoint.as_deref())?;
            if linear {
                app.all_linear();
            }
            if let Some(script) = &script {
                app.play(script, 90.0)?;
            }
            let camera = match eye.zip(look) {
                Some((eye, look)) => View::Camera(gfx::Camera::look_at(eye, look)),
                None => View::Named(view),
            };
            cli::snapshot::snapshot(&env.renderer_config(), &mut app, &out, size, camera, stereo)
        }
        Command::Run {
            model,
            xr,
            desktop,
            stats,
            xr_config,
            input,
            size,
            frames,
            screenshot,
            script,
            play_area,
            mirror,
            watch,
            train,
            ckpt,
        } => {
            let mode = match (xr, desktop) {
                (true, _) => Mode::Xr,
                (_, true) => Mode::Desktop,
                _ => Mode::Auto,
            };
            cli::run::run(
                RunCommand {
                    model,
                    mode,
                    checkpoint: ckpt.checkpoint,
                    input,
                    script,
                    watch,
                    train,
                    options: RunOptions {
                        size,
                        frames,
                        screenshot,
                        stats,
                        xr_config: xr_config.or(env.xr_config.clone()),
                        script: None,
                        play_area,
                        mirror,
                    },
                },
                &env,
            )
        }
        Command::Replay {
            model,
            script,
            state_out,
            input,
            fps,
            ckpt,
        } => cli::replay::replay(model, &script, &state_out, &input, fps, ckpt.checkpoint.as_deref()),
        Command::Bench { what } => match what {
            BenchCommand::Forward {
                model,
                synthetic,
                iters,
                no_ort,
                per_layer,
            } => bench::forward::bench_forward(model, synthetic, iters, no_ort, per_layer),
            BenchCommand::Render {
                model,
                synthetic,
                frames,
                size,
                stereo,
            } => bench::render::bench_render(&env.renderer_config(), model, synthetic, frames, size, stereo),
            BenchCommand::Train {
                seconds,
                rounds,
                size,
                stereo,
                every,
            } => bench::train::bench_train(&env.renderer_config(), seconds, rounds, size, stereo, every),
            BenchCommand::Bundle {
                model,
                synthetic,
                iters,
                frames,
                size,
                stereo,
                edge_scale,
            } => bench::bundle::bench_bundle(
                &env.renderer_config(),
                model,
                synthetic,
                iters,
                frames,
                (size, stereo),
                &edge_scale,
            ),
        },
    }
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("`{s}`: expected WxH, e.g. 1280x720");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    match (w.trim().parse::<u32>(), h.trim().parse::<u32>()) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => Ok((w, h)),
        _ => Err(err()),
    }
}

/// `WxD` in meters, both positive.
fn parse_play_area(s: &str) -> Result<glam::Vec2, String> {
    let bad = || format!("`{s}`: expected WIDTHxDEPTH in meters, e.g. 3x4.5");
    let (w, d) = s.split_once('x').ok_or_else(bad)?;
    let (w, d): (f32, f32) = (
        w.trim().parse().map_err(|_| bad())?,
        d.trim().parse().map_err(|_| bad())?,
    );
    if !(w.is_finite() && d.is_finite() && w > 0.0 && d > 0.0) {
        return Err(bad());
    }
    Ok(glam::Vec2::new(w, d))
}

fn parse_vec3(s: &str) -> Result<glam::Vec3, String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("`{s}`: {e}"))?;
    match v.as_slice() {
        [x, y, z] if v.iter().all(|c| c.is_finite()) => Ok(glam::Vec3::new(*x, *y, *z)),
        _ => Err(format!("`{s}`: expected x,y,z")),
    }
}
