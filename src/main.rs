//! The `netwalk` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use netwalk::gfx;
use netwalk::nn::{self, Model, Weights};
use netwalk::scene;

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
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
    /// Accuracy on the model's held-out samples.
    Eval {
        model: Option<PathBuf>,
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
        /// Index into the model's bundled samples.
        #[arg(long, default_value_t = 0)]
        sample: usize,
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
        /// Index into the model's bundled samples.
        #[arg(long, default_value_t = 0)]
        sample: usize,
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
        /// Index into the model's bundled samples.
        #[arg(long, default_value_t = 0)]
        sample: usize,
        /// Frames per second the systems run at.
        #[arg(long, default_value_t = 90.0)]
        fps: f32,
        /// Start on a checkpoint's weights (the script scrubs from there).
        #[command(flatten)]
        ckpt: CheckpointArg,
    },
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
    /// A PNG, or a safetensors file with a tensor `input` of the input shape.
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

fn model_path(model: Option<PathBuf>) -> Result<PathBuf> {
    match model {
        Some(p) => Ok(p),
        None => Ok(nn::demo::demo_dir()?),
    }
}

fn load_model(model: Option<PathBuf>) -> Result<Model> {
    Ok(Model::load(&model_path(model)?)?)
}

fn load_weights(model: &Model, ckpt: &CheckpointArg) -> Result<Weights> {
    let w = match &ckpt.checkpoint {
        Some(key) => Weights::load_file(model, &model.checkpoint(key)?.weights)?,
        None => Weights::load(model)?,
    };
    for warning in &w.warnings {
        eprintln!("warning: {}: {warning}", w.source.display());
    }
    Ok(w)
}

fn load_samples(model: &Model) -> Result<nn::Samples> {
    let path = model
        .samples
        .as_ref()
        .with_context(|| format!("{}: the model lists no \"samples\"", model.path.display()))?;
    Ok(nn::Samples::load(model, path)?)
}

fn load_one_input(model: &Model, args: &InputArgs) -> Result<Vec<f32>> {
    match (&args.input, args.sample) {
        (Some(file), _) => Ok(nn::load_input(model, file)?),
        (None, Some(i)) => {
            let s = load_samples(model)?;
            if i >= s.count {
                bail!(
                    "sample {i} does not exist: the model has {} samples (0..{})",
                    s.count,
                    s.count - 1
                );
            }
            Ok(s.image(i).to_vec())
        }
        (None, None) => bail!("give --input FILE or --sample N"),
    }
}

/// Load a model and its weights (or a checkpoint's) and run it on the chosen input.
fn run_on_input(
    model: Option<PathBuf>,
    input: &InputArgs,
    ckpt: &CheckpointArg,
) -> Result<(Model, Weights, nn::Activations)> {
    let model = load_model(model)?;
    let weights = load_weights(&model, ckpt)?;
    let raw = load_one_input(&model, input)?;
    let acts = nn::forward(&model, &weights, &raw)?;
    Ok((model, weights, acts))
}

fn run(cli: Cli) -> Result<()> {
    let Some(command) = cli.command else {
        let app = build_app(None, 0, &CheckpointArg { checkpoint: None })?;
        return run_any(app, Mode::Auto, &RunOptions::default());
    };
    match command {
        Command::Info { model, ckpt } => info(&load_model(model)?, &ckpt),
        Command::Activations {
            model,
            input,
            out,
            ckpt,
        } => {
            let (model, _, acts) = run_on_input(model, &input, &ckpt)?;
            write_activations(&model, &acts, &out)
        }
        Command::Neuron {
            model,
            input,
            layer,
            index,
            top,
            ckpt,
        } => {
            let (model, weights, acts) = run_on_input(model, &input, &ckpt)?;
            let li = model
                .layer_index(&layer)
                .with_context(|| format!("{}: no layer `{layer}`", model.path.display()))?;
            let info = nn::query::neuron(&model, &weights, &acts, li, &index)?;
            let n = if top == 0 {
                info.inputs.len()
            } else {
                top.min(info.inputs.len())
            };
            let inputs: Vec<serde_json::Value> = info.inputs[..n]
                .iter()
                .map(|i| {
                    serde_json::json!({"layer": model.source_name(i.source), "index": i.index,
                        "weight": i.weight, "activation": i.activation, "contribution": i.contribution})
                })
                .collect();
            let v = serde_json::json!({"layer": layer, "index": info.index, "activation": info.value,
                "pre_activation": info.pre_activation, "bias": info.bias, "inputs": inputs,
                "input_count": info.inputs.len()});
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(())
        }
        Command::Eval { model, ckpt } => {
            let model = load_model(model)?;
            let weights = load_weights(&model, &ckpt)?;
            let samples = load_samples(&model)?;
            let (k, n) = nn::train::evaluate(&model, &weights, &samples)?;
            println!("accuracy {:.4} ({k}/{n})", k as f64 / n.max(1) as f64);
            Ok(())
        }
        Command::Train {
            model,
            epochs,
            seed,
            out,
            data,
            batch,
            lr,
        } => train(model, epochs, seed, out, data, batch, lr),
        Command::Snapshot {
            model,
            out,
            size,
            sample,
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
            let mut app = build_app(model, sample, &ckpt)?;
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
            snapshot(&mut app, &out, size, camera, stereo)
        }
        Command::Run {
            model,
            xr,
            desktop,
            stats,
            xr_config,
            sample,
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
            // A bad script fails before any work.
            let script = script.map(|s| netwalk::input::Script::load(&s)).transpose()?;
            if script.is_some() && desktop {
                bail!(
                    "--script works with XR (real poses, scripted buttons); for scripted desktop-free runs see `netwalk replay`"
                );
            }
            if train && ckpt.checkpoint.is_some() {
                bail!("--train starts a new timeline: --checkpoint does not apply");
            }
            let mut app = build_app(model, sample, &ckpt)?;
            if let Some(dir) = &watch {
                let feed = nn::live::watch(&app.model, dir, nn::live::WATCH_INTERVAL)?;
                println!("watching {} for checkpoints", dir.display());
                app = app.with_feed(feed);
            }
            if train {
                let train_set = nn::Samples::load(&app.model, &nn::demo::demo_train_data()?)?;
                let heldout = load_samples(&app.model).ok();
                let cfg = nn::train::LiveConfig::default();
                println!(
                    "training {} live on {} samples: {} epochs, a checkpoint every {} steps",
                    app.model.name, train_set.count, cfg.epochs, cfg.every
                );
                let feed = nn::live::train(&app.model, train_set, heldout, cfg)?;
                app.clear_timeline()?;
                app = app.with_feed(feed);
            }
            let mode = match (xr, desktop) {
                (true, _) => Mode::Xr,
                (_, true) => Mode::Desktop,
                _ => Mode::Auto,
            };
            let options = RunOptions {
                size,
                frames,
                screenshot,
                stats,
                xr_config: xr_config.or(RunOptions::default().xr_config),
                script,
                play_area,
                mirror,
            };
            run_any(app, mode, &options)
        }
        Command::Replay {
            model,
            script,
            state_out,
            sample,
            fps,
            ckpt,
        } => replay(model, &script, &state_out, sample, fps, &ckpt),
        Command::Bench { what } => match what {
            BenchCommand::Forward {
                model,
                synthetic,
                iters,
                no_ort,
                per_layer,
            } => bench_forward(model, synthetic, iters, no_ort, per_layer),
            BenchCommand::Render {
                model,
                synthetic,
                frames,
                size,
                stereo,
            } => bench_render(model, synthetic, frames, size, stereo),
            BenchCommand::Train {
                seconds,
                rounds,
                size,
                stereo,
                every,
            } => bench_train(seconds, rounds, size, stereo, every),
            BenchCommand::Bundle {
                model,
                synthetic,
                iters,
                frames,
                size,
                stereo,
                edge_scale,
            } => bench_bundle(model, synthetic, iters, frames, (size, stereo), &edge_scale),
        },
    }
}

fn info(model: &Model, ckpt: &CheckpointArg) -> Result<()> {
    println!("{} ({})", model.name, model.path.display());
    println!(
        "input `{}` {}  mean {:?} std {:?}",
        model.input.name, model.input.shape, model.input.mean, model.input.std
    );
    println!(
        "{:<28} {:<17} {:<20} {:>12} {:>12}  inputs",
        "layer", "op", "output", "params", "activations"
    );
    for l in &model.layers {
        let ins: Vec<&str> = l.inputs.iter().map(|s| model.source_name(*s)).collect();
        println!(
            "{:<28} {:<17} {:<20} {:>12} {:>12}  {}",
            l.name,
            l.op.name(),
            l.shape.to_string(),
            l.param_count(),
            l.shape.elements(),
            ins.join(", ")
        );
    }
    println!(
        "total: {} layers, {} parameters, {} activations",
        model.layers.len(),
        model.param_count(),
        model.activation_count()
    );
    if !model.checkpoints.is_empty() {
        let labels: Vec<&str> = model.checkpoints.iter().map(|c| c.label.as_str()).collect();
        println!("checkpoints ({}): {}", labels.len(), labels.join(", "));
    }
    if let Some(key) = &ckpt.checkpoint {
        let c = model.checkpoint(key)?;
        println!("using checkpoint `{}` ({})", c.label, c.weights.display());
    }
    Ok(())
}

fn write_activations(model: &Model, acts: &nn::Activations, out: &Path) -> Result<()> {
    let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = model
        .layers
        .iter()
        .zip(&acts.layers)
        .map(|(l, v)| (l.name.clone(), l.shape.dims(), v.clone()))
        .collect();
    let meta = std::collections::BTreeMap::from([("model".to_owned(), model.name.clone())]);
    nn::weights::write_f32_safetensors(out, &tensors, &meta)?;
    println!("wrote {} layers to {}", model.layers.len(), out.display());
    Ok(())
}

fn train(
    model: Option<PathBuf>,
    epochs: usize,
    seed: u64,
    out: PathBuf,
    data: Option<PathBuf>,
    batch: usize,
    lr: f64,
) -> Result<()> {
    if epochs == 0 || batch == 0 {
        bail!("--epochs and --batch must be at least 1");
    }
    let model = load_model(model)?;
    let data = match data {
        Some(d) => d,
        None => nn::demo::demo_train_data()?,
    };
    let train_set = nn::Samples::load(&model, &data)?;
    let heldout = match &model.samples {
        Some(p) => Some(nn::Samples::load(&model, p)?),
        None => None,
    };
    println!(
        "training {} on {} samples ({}), {epochs} epochs, batch {batch}, seed {seed} -> {}",
        model.name,
        train_set.count,
        data.display(),
        out.display()
    );
    let cfg = nn::train::TrainConfig {
        epochs,
        seed,
        batch,
        lr,
        out: out.clone(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = std::time::Instant::now();
    let weights = nn::train::train(&model, &train_set, heldout.as_ref(), &cfg, |ev| match ev {
        nn::train::TrainEvent::Started { steps, .. } => bar.set_length(steps as u64),
        nn::train::TrainEvent::Step { step, loss } => {
            bar.set_position(step as u64);
            if step % 10 == 0 {
                bar.set_message(format!("loss {loss:.4}"));
            }
        }
        nn::train::TrainEvent::Epoch { epoch, loss, accuracy } => {
            let acc = accuracy
                .map(|(k, n)| format!("  held-out accuracy {:.4} ({k}/{n})", k as f64 / n as f64))
                .unwrap_or_default();
            let line = format!("epoch {epoch}/{epochs}  loss {loss:.4}{acc}");
            // A hidden bar (not a terminal) swallows println: print plainly then.
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        }
        nn::train::TrainEvent::Checkpoint { label, file, .. } => {
            tracing::info!(label, file = %file.display(), "checkpoint written");
        }
    })?;
    bar.finish_and_clear();
    if let Some(h) = &heldout {
        let (k, n) = nn::train::evaluate(&model, &weights, h)?;
        println!("final held-out accuracy {:.4} ({k}/{n})", k as f64 / n as f64);
    }
    println!(
        "done in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        out.join("model.json").display()
    );
    Ok(())
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

/// Where a snapshot looks from.
enum View {
    Camera(gfx::Camera),
    /// overview, input, output or a layer name.
    Named(String),
}

/// The camera of a named view, or an error listing the names.
fn view_camera(model: &Model, placements: &[scene::LayerPlacement], name: &str, aspect: f32) -> Result<gfx::Camera> {
    netwalk::view::annotate::named_view(placements, name, aspect).ok_or_else(|| {
        let names: Vec<&str> = placements.iter().map(|p| p.name.as_str()).collect();
        anyhow::anyhow!(
            "--view `{name}`: no such layer in {} (overview, input, output, or one of: {})",
            model.path.display(),
            names.join(", ")
        )
    })
}

fn snapshot(
    app: &mut netwalk::app::App,
    out: &Path,
    (width, height): (u32, u32),
    view: View,
    stereo: bool,
) -> Result<()> {
    let placements = app.placements();
    let aspect = width as f32 / height as f32;
    let camera = match view {
        View::Camera(c) if c.eye.distance(c.target) < 1e-4 => bail!("--eye and --look must be different points"),
        View::Camera(c) => c,
        View::Named(name) => view_camera(&app.model, &placements, &name, aspect)?,
    };
    let views = if stereo {
        camera.stereo(0.064).to_vec()
    } else {
        vec![camera]
    };
    let mut renderer = gfx::Renderer::new(&gfx::RendererConfig::from_env())?;
    tracing::info!(device = renderer.device_name(), "rendering");
    let log = renderer.validation_log();
    // Close-up neurons as voxels, for the eye (or between the eyes).
    let eye = views.iter().map(|v| v.eye).sum::<glam::Vec3>() / views.len() as f32;
    app.upload(&mut renderer, eye)?;
    let image = gfx::RgbaImage::side_by_side(&renderer.render_offscreen(width, height, &views)?);
    // Teardown is validated too (leaks are reported when the device is destroyed).
    drop(renderer);
    let messages = log.messages();
    if !messages.is_empty() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {}",
            messages.len(),
            messages[0]
        );
    }
    save_png(&image, out)?;
    println!("wrote {}x{} snapshot to {}", image.width, image.height, out.display());
    Ok(())
}

/// Writes `image` to `out` through a temporary file, so a failed write leaves no partial PNG.
fn save_png(image: &gfx::RgbaImage, out: &Path) -> Result<()> {
    let tmp = out.with_extension("png.partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("{}: cannot write", tmp.display()))?;
    image
        .write_png(std::io::BufWriter::new(file))
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("{}: cannot write", out.display()))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Xr,
    Desktop,
    /// XR if a runtime and headset are there, else a window, else a PNG overview.
    Auto,
}

struct RunOptions {
    size: (u32, u32),
    frames: Option<u64>,
    screenshot: Option<PathBuf>,
    stats: bool,
    xr_config: Option<PathBuf>,
    script: Option<netwalk::input::Script>,
    play_area: Option<glam::Vec2>,
    mirror: bool,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            size: (1280, 720),
            frames: None,
            screenshot: None,
            stats: false,
            xr_config: std::env::var_os("NETWALK_XR_CONFIG").map(PathBuf::from),
            script: None,
            play_area: None,
            mirror: false,
        }
    }
}

const OVERVIEW_PNG: &str = "netwalk-overview.png";

fn run_any(mut app: netwalk::app::App, mode: Mode, options: &RunOptions) -> Result<()> {
    if options.frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    // Interactive: scrubbing and new checkpoints rerun the network off the frame's thread.
    app.start_recompute()?;
    if mode != Mode::Desktop {
        match run_xr(&mut app, options) {
            Err(e)
                if mode == Mode::Auto
                    && e.downcast_ref::<netwalk::xr::XrError>()
                        .is_some_and(|e| e.is_unavailable()) =>
            {
                eprintln!("no headset: {e:#}");
            }
            other => return other,
        }
    }
    let no_var = |v: &str| std::env::var_os(v).is_none_or(|s| s.is_empty());
    if mode == Mode::Auto && no_var("DISPLAY") && no_var("WAYLAND_DISPLAY") {
        let out = Path::new(OVERVIEW_PNG);
        snapshot(&mut app, out, options.size, View::Named("overview".into()), false)?;
        println!(
            "no headset and no display, so this is a picture: {OVERVIEW_PNG}. For VR start an OpenXR runtime \
             (SteamVR, or monado-service; see the README's OpenXR section) with a headset and run `netwalk` again \
             (or `netwalk run --xr`); for a window run it in a desktop session (DISPLAY or WAYLAND_DISPLAY set) \
             or use `netwalk run --desktop`."
        );
        return Ok(());
    }
    run_desktop(app, options.size, options.frames, options.screenshot.as_deref())
}

/// Set by SIGINT/SIGTERM: the XR loop then asks the runtime to end the session.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn run_xr(app: &mut netwalk::app::App, options: &RunOptions) -> Result<()> {
    use netwalk::xr::{Feedback, Hand, XrEvent, XrOptions};
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_stop_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_stop_signal as *const () as libc::sighandler_t);
    }
    let validation = gfx::RendererConfig::from_env().validation;
    // Dropped after run_xr returns, so after the renderer (and its surface) that draws into it.
    let mut mirror = if options.mirror {
        Some(gfx::mirror::MirrorWindow::open(
            &format!("netwalk (mirror): {}", app.model.name),
            options.size,
        )?)
    } else {
        None
    };
    let xr_options = XrOptions {
        mirror: mirror.as_ref().and_then(|m| m.window()),
        frames: options.frames,
        validation,
        bindings_dir: options.xr_config.clone(),
        readback_frame: options.screenshot.as_ref().map(|_| options.frames.unwrap_or(1)),
    };
    let mut shot = None;
    let mut player = options.script.as_ref().map(netwalk::input::ScriptPlayer::live);
    let mut first_frame: Option<std::time::Instant> = None;
    // What was last printed: each hand's hovered block, the selection.
    let mut shown: ([Option<usize>; 2], Option<scene::NeuronRef>) = ([None, None], None);
    // An error of the app's frame: the session is ended through the runtime, then it is reported.
    let mut app_error: Option<anyhow::Error> = None;
    let mut on_event = |event: XrEvent| -> Feedback {
        let mut feedback = Feedback::default();
        match event {
            XrEvent::Ready {
                system,
                device,
                width,
                height,
                space,
                stage_bounds,
                depth,
            } => {
                let bounds = stage_bounds.map_or("unknown".into(), |b| format!("{:.2}x{:.2} m", b.x, b.y));
                let depth = if depth { "color + depth" } else { "color" };
                println!(
                    "xr: {system} on {device}, {width}x{height} per eye ({depth}), {space} space, play area {bounds}"
                );
                // The network winds through the play area.
                if let Some(area) = options.play_area.or(stage_bounds) {
                    app.scene.stage = scene::Stage {
                        half_extents: area / 2.0,
                    };
                    app.scene.arrange();
                }
            }
            XrEvent::Poll => {
                if let Some(m) = mirror.as_mut() {
                    let events = m.pump();
                    if events.close_requested {
                        println!("mirror window closed");
                    }
                    feedback.exit = events.close_requested;
                    feedback.mirror_resized = events.resized;
                }
            }
            XrEvent::State(state) => println!("state {state}"),
            XrEvent::Profile { hand, profile } => println!("profile {}: {profile}", hand.name()),
            XrEvent::Update { input, renderer } => {
                if app_error.is_some() {
                    feedback.exit = true;
                    return feedback;
                }
                let now = std::time::Instant::now();
                let t = now.duration_since(*first_frame.get_or_insert(now)).as_secs_f32();
                let mut snapshot = input.to_snapshot(t);
                if let Some(p) = player.as_mut() {
                    snapshot = snapshot.with_scripted_buttons(&p.advance(t));
                }
                let eye = input.head.map_or(glam::Vec3::new(0.0, 1.6, 0.0), |h| h.position);
                let stepped = app
                    .step(&snapshot)
                    .map_err(anyhow::Error::from)
                    .and_then(|events| app.upload(renderer, eye).map(|()| events).map_err(anyhow::Error::from));
                match stepped {
                    Ok(events) => {
                        feedback.pulse = events.haptic;
                        print_scene_changes(&app.scene, &mut shown);
                    }
                    Err(e) => {
                        app_error = Some(e);
                        feedback.exit = true;
                    }
                }
            }
            XrEvent::Frame {
                index,
                input,
                views,
                readback,
            } => {
                if index == 1 || readback.is_some() {
                    for hand in Hand::BOTH {
                        let h = input.hand(hand);
                        match h.aim {
                            Some(aim) => {
                                let (p, f) = (aim.position, aim.forward());
                                println!(
                                    "frame {index}: {} aim {:.3} {:.3} {:.3} forward {:.3} {:.3} {:.3} select {}",
                                    hand.name(),
                                    p.x,
                                    p.y,
                                    p.z,
                                    f.x,
                                    f.y,
                                    f.z,
                                    h.select
                                );
                            }
                            None => println!("frame {index}: {} aim untracked", hand.name()),
                        }
                    }
                }
                if let Some(images) = readback {
                    for (i, v) in views.iter().enumerate() {
                        let (p, o, f) = (v.position, v.orientation, v.fov);
                        println!(
                            "frame {index}: eye {i} position {} {} {} orientation {} {} {} {} fov {} {} {} {}",
                            p.x, p.y, p.z, o.x, o.y, o.z, o.w, f.left, f.right, f.up, f.down
                        );
                    }
                    shot = Some(gfx::RgbaImage::side_by_side(images));
                }
            }
        }
        feedback
    };
    let outcome = netwalk::xr::run_xr(&xr_options, &STOP, &mut on_event)?;
    if let Some(e) = app_error {
        return Err(e);
    }
    println!("xr: ended ({:?}) after {} frames", outcome.end, outcome.frames);
    if options.stats && outcome.stats.cpu.is_empty() {
        println!("stats: no frames rendered");
    } else if options.stats {
        let mut ms: Vec<f64> = outcome.stats.cpu.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len().max(1) as f64;
        println!(
            "stats: {} frames, CPU per frame mean {mean:.2} ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, missed {}, not rendered {}",
            ms.len(),
            percentile(&ms, 0.5),
            percentile(&ms, 0.99),
            ms.last().copied().unwrap_or(0.0),
            outcome.stats.missed,
            outcome.stats.not_rendered
        );
    }
    if let Some(first) = outcome.xr_validation.first() {
        bail!(
            "OpenXR validation reported {} problem(s); first: {first}",
            outcome.xr_validation.len()
        );
    }
    if let Some(first) = outcome.vulkan_validation.first() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {first}",
            outcome.vulkan_validation.len()
        );
    }
    if let Some(out) = &options.screenshot {
        let image = shot.context("the session ended before the screenshot frame was rendered")?;
        save_png(&image, out)?;
        println!(
            "wrote {}x{} screenshot (left eye | right eye) to {}",
            image.width,
            image.height,
            out.display()
        );
    }
    match outcome.end {
        netwalk::xr::EndReason::Exited | netwalk::xr::EndReason::Interrupted => Ok(()),
        other => bail!(
            "the OpenXR runtime ended the session ({other:?}) after {} frames",
            outcome.frames
        ),
    }
}

/// Prints what each hand points at and the selection when they changed since `shown`.
fn print_scene_changes(sc: &scene::Scene, shown: &mut ([Option<usize>; 2], Option<scene::NeuronRef>)) {
    for (i, hand) in netwalk::input::Hand::BOTH.into_iter().enumerate() {
        let hover = sc.hands[i].hover.as_ref().map(|h| h.block);
        if hover != shown.0[i] {
            shown.0[i] = hover;
            match hover.and_then(|k| Some((k, sc.placement(k)?))) {
                Some((k, p)) => println!("hover {}: block {k} ({})", hand.name(), p.name),
                None => println!("hover {}: none", hand.name()),
            }
        }
    }
    if sc.selection != shown.1 {
        shown.1 = sc.selection.clone();
        match &sc.selection {
            Some(n) => println!("selected block {} neuron {:?}", n.block, n.index),
            None => println!("selected none"),
        }
    }
}

/// The app on `model` (default: the demo) with `sample` as its input, its samples on the tray
/// and its checkpoints as the timeline.
fn build_app(model: Option<PathBuf>, sample: usize, ckpt: &CheckpointArg) -> Result<netwalk::app::App> {
    let model = load_model(model)?;
    let weights = load_weights(&model, ckpt)?;
    let input = InputArgs {
        input: None,
        sample: Some(sample),
    };
    let raw = load_one_input(&model, &input)?;
    let samples = load_samples(&model).ok();
    let timeline = nn::timeline::Timeline::load(&model)?;
    let mut app = netwalk::app::App::new(
        model,
        weights,
        samples,
        raw,
        scene::Stage::default(),
        scene::Scale::WalkIn,
    )?
    .with_timeline(timeline);
    if let Some(key) = &ckpt.checkpoint {
        let index = app
            .model
            .checkpoints
            .iter()
            .position(|c| &c.label == key)
            .or_else(|| key.parse().ok());
        app.scene.set_checkpoint(&app.model, index);
    }
    Ok(app)
}

fn run_desktop(
    mut app: netwalk::app::App,
    (width, height): (u32, u32),
    frames: Option<u64>,
    screenshot: Option<&Path>,
) -> Result<()> {
    if frames == Some(0) {
        bail!("--frames must be at least 1");
    }
    let camera = app.overview(width as f32 / height as f32);
    let model = &app.model;
    let options = gfx::window::DesktopOptions {
        title: format!("netwalk: {}", model.name),
        size: (width, height),
        frames,
        readback: screenshot.is_some(),
    };
    // One line per new frame size (the first frame and each resize) and per pause, for the user
    // and for tests.
    let mut last = (0, 0);
    let mut on_event = |event| match event {
        gfx::window::DesktopEvent::Presented { frame, width, height } => {
            if (width, height) != last {
                last = (width, height);
                println!("frame {frame}: {width}x{height}");
            }
        }
        gfx::window::DesktopEvent::Paused { after_frame } => println!("paused after frame {after_frame}"),
        gfx::window::DesktopEvent::Resumed => println!("resumed"),
    };
    let outcome = gfx::window::run_desktop(
        &gfx::RendererConfig::from_env(),
        &mut app,
        camera,
        options,
        &mut on_event,
    )?;
    if let Some(first) = outcome.validation.first() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {first}",
            outcome.validation.len()
        );
    }
    println!("closed after {} frames", outcome.frames);
    if let Some(out) = screenshot {
        let image = outcome
            .last_frame
            .context("no frame was presented, so there is no screenshot")?;
        save_png(&image, out)?;
        println!("wrote {}x{} screenshot to {}", image.width, image.height, out.display());
    }
    Ok(())
}

fn replay(
    model: Option<PathBuf>,
    script: &Path,
    state_out: &Path,
    sample: usize,
    fps: f32,
    ckpt: &CheckpointArg,
) -> Result<()> {
    if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
        bail!("--fps must be a number in (0, 1000], got {fps}");
    }
    // The script first: a bad one fails before any work, and no state file is written.
    let script = netwalk::input::Script::load(script)?;
    let mut app = build_app(model, sample, ckpt)?;
    app.play(&script, fps)?;
    let net = scene::Network {
        model: &app.model,
        weights: &app.weights,
        acts: &app.acts,
    };
    let state = scene::replay::state_json(&app.scene, &net);
    let tmp = state_out.with_extension("json.partial");
    std::fs::write(&tmp, serde_json::to_string_pretty(&state)? + "\n")
        .with_context(|| format!("{}: cannot write", tmp.display()))?;
    std::fs::rename(&tmp, state_out).with_context(|| format!("{}: cannot write", state_out.display()))?;
    println!(
        "wrote the state after {:.2} s of script to {}",
        script.duration(),
        state_out.display()
    );
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Median and p99 of durations, in milliseconds.
fn ms_stats(mut times: Vec<f64>) -> (f64, f64) {
    times.sort_by(f64::total_cmp);
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// The model a benchmark runs (a synthetic one with random weights, or a model's own), its name,
/// and a fixed input.
fn bench_model(model: Option<PathBuf>, synthetic: Option<&str>) -> Result<(Model, Weights, String, Vec<f32>)> {
    let (model, weights, name) = match synthetic {
        Some(name) => {
            let (m, w) = nn::synthetic::build(name, 7)?;
            (m, w, format!("synthetic {name}"))
        }
        None => {
            let m = load_model(model)?;
            let w = Weights::load(&m)?;
            let n = m.name.clone();
            (m, w, n)
        }
    };
    let raw: Vec<f32> = (0..model.input.shape.elements())
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    Ok((model, weights, name, raw))
}

fn bench_render(
    model: Option<PathBuf>,
    synthetic: Option<String>,
    frames: usize,
    (width, height): (u32, u32),
    stereo: bool,
) -> Result<()> {
    let frames = frames.max(1);
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    let acts = nn::forward(&model, &weights, &raw)?;
    let placements = scene::layout(&model, scene::LayoutKind::Grid);
    let draw = gfx::NetworkDraw::new(&model, &acts, &placements);
    let (min, max) = scene::layout::bounds(&placements);
    let camera = gfx::Camera::overview(min, max, width as f32 / height as f32);
    let views = if stereo {
        camera.stereo(0.064).to_vec()
    } else {
        vec![camera]
    };
    let mut renderer = gfx::Renderer::new(&gfx::RendererConfig::from_env())?;
    let log = renderer.validation_log();
    let measure = |renderer: &mut gfx::Renderer| -> Result<(Vec<f64>, Vec<f64>)> {
        let warmup = (frames / 10).clamp(2, 20);
        let (mut gpu, mut cpu) = (Vec::with_capacity(frames), Vec::with_capacity(frames));
        for i in 0..warmup + frames {
            let t = renderer.time_frame(width, height, &views)?;
            if i >= warmup {
                cpu.push(t.record.as_secs_f64() * 1e3);
                gpu.extend(t.gpu.map(|g| g.as_secs_f64() * 1e3));
            }
        }
        Ok((gpu, cpu))
    };
    renderer.set_network(&draw)?;
    let calls = renderer.draw_calls();
    let (scene_gpu, scene_cpu) = measure(&mut renderer)?;
    renderer.set_draw_list(&gfx::DrawList::default())?;
    let (empty_gpu, empty_cpu) = measure(&mut renderer)?;
    // Frames in flight: the scene back to back without readback, an overlay upload per frame (as
    // the app's loops do), with 1 slot (each frame waits for its own fence after submitting) and
    // 2 (a frame waits for the one two before); without other CPU work and with half a GPU frame
    // of it (a spin standing in for the app's per-frame work, which 2 slots overlap with the GPU).
    // The last frame (it drains the queue) is left out.
    renderer.set_draw_list(&draw.list)?;
    let half_gpu = if scene_gpu.is_empty() {
        1.0
    } else {
        ms_stats(scene_gpu.clone()).0 / 2.0
    };
    let mut flights = Vec::new();
    for (work_ms, in_flight) in [(0.0, 1), (0.0, 2), (half_gpu, 1), (half_gpu, 2)] {
        let warmup = (frames / 10).clamp(2, 20);
        let work = std::time::Duration::from_secs_f64(work_ms / 1e3);
        let mut app = |r: &mut gfx::Renderer, _: usize| {
            let started = std::time::Instant::now();
            while started.elapsed() < work {
                std::hint::spin_loop();
            }
            r.set_overlay(&gfx::DrawList::default())
        };
        let mut t = renderer.time_frames_in_flight(width, height, &views, warmup + frames + 1, in_flight, &mut app)?;
        t.pop();
        flights.push((work_ms, in_flight, t.split_off(warmup)));
    }
    let device = renderer.device_name().to_owned();
    drop(renderer);
    let messages = log.messages();
    if !messages.is_empty() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {}",
            messages.len(),
            messages[0]
        );
    }
    let l = &draw.list;
    let eyes = if stereo { "2 eyes × " } else { "" };
    println!(
        "netwalk bench render {name}: {eyes}{width}x{height} on {device}; {} tiles, {} cubes, {} lines, {} glyphs, {} values; {calls} draw calls; {frames} frames",
        l.tiles.len(),
        l.cubes.len(),
        l.lines.len(),
        l.glyphs.len(),
        draw.values.len(),
    );
    let line = |what: &str, gpu: Vec<f64>, cpu: Vec<f64>| {
        let (cm, cp) = ms_stats(cpu);
        let gpu_text = if gpu.is_empty() {
            "GPU n/a (no timestamp queries)".to_owned()
        } else {
            let (gm, gp) = ms_stats(gpu);
            format!("GPU median {gm:.3} ms  p99 {gp:.3} ms")
        };
        println!("  {what:<6} {gpu_text};  CPU record median {cm:.3} ms  p99 {cp:.3} ms");
    };
    let ratio = match (scene_gpu.is_empty(), empty_gpu.is_empty()) {
        (false, false) => Some(ms_stats(scene_gpu.clone()).0 / ms_stats(empty_gpu.clone()).0),
        _ => None,
    };
    line("scene", scene_gpu, scene_cpu);
    line("empty", empty_gpu, empty_cpu);
    if let Some(r) = ratio {
        println!("  scene / empty GPU median: {r:.2}x");
    }
    for (work_ms, in_flight, t) in flights {
        let stat = |f: fn(&gfx::FlightTimes) -> std::time::Duration| {
            ms_stats(t.iter().map(|x| f(x).as_secs_f64() * 1e3).collect())
        };
        let ((rm, rp), (wm, wp), (am, ap)) = (stat(|x| x.record), stat(|x| x.wait), stat(|x| x.wall));
        let mean_wall = t.iter().map(|x| x.wall.as_secs_f64()).sum::<f64>() / t.len().max(1) as f64;
        println!(
            "  {in_flight} in flight, app work {work_ms:.3} ms: CPU record median {rm:.3} ms  p99 {rp:.3} ms;  fence wait median {wm:.3} ms  p99 {wp:.3} ms;  wall median {am:.3} ms  p99 {ap:.3} ms ({:.0} frames/s)",
            1.0 / mean_wall.max(1e-9)
        );
    }
    Ok(())
}

/// One run of `bench train`: frame times (ms) and the checkpoints that arrived meanwhile.
struct TrainRun {
    frames: Vec<f64>,
    checkpoints: usize,
}

fn bench_train(seconds: f64, rounds: usize, (width, height): (u32, u32), stereo: bool, every: usize) -> Result<()> {
    if every == 0 || rounds == 0 {
        bail!("--every and --rounds must be at least 1");
    }
    if !(seconds.is_finite() && (0.5..=3600.0).contains(&seconds)) {
        bail!("--seconds must be in [0.5, 3600], got {seconds}");
    }
    let mut renderer = gfx::Renderer::new(&gfx::RendererConfig::from_env())?;
    let log = renderer.validation_log();
    let train_set = nn::Samples::load(&load_model(None)?, &nn::demo::demo_train_data()?)?;
    // training: None = not training; Some(worker) = training, the network rerun on the worker or not.
    let mut run = |training: Option<bool>| -> Result<TrainRun> {
        let mut app = build_app(None, 0, &CheckpointArg { checkpoint: None })?;
        if training != Some(false) {
            app.start_recompute()?;
        }
        if training.is_some() {
            let cfg = nn::train::LiveConfig {
                every,
                ..nn::train::LiveConfig::default()
            };
            let heldout = load_samples(&app.model).ok();
            let feed = nn::live::train(&app.model, train_set.clone(), heldout, cfg)?;
            app.clear_timeline()?;
            app = app.with_feed(feed);
        }
        let camera = app.overview(width as f32 / height as f32);
        let views = if stereo {
            camera.stereo(0.064).to_vec()
        } else {
            vec![camera]
        };
        let warmup = 20;
        let mut times = Vec::new();
        let mut input = netwalk::input::InputSnapshot::default();
        let begin = std::time::Instant::now();
        for i in 0.. {
            let start = std::time::Instant::now();
            input.time += 1.0 / 90.0;
            app.step(&input)?;
            app.upload(&mut renderer, camera.eye)?;
            renderer.time_frame(width, height, &views)?;
            if i >= warmup {
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            if begin.elapsed().as_secs_f64() >= seconds && i >= warmup + 10 {
                break;
            }
        }
        let checkpoints = app.timeline.as_ref().map_or(0, |t| t.len());
        Ok(TrainRun {
            frames: times,
            checkpoints,
        })
    };
    let mut runs: [TrainRun; 3] = std::array::from_fn(|_| TrainRun {
        frames: Vec::new(),
        checkpoints: 0,
    });
    for _ in 0..rounds {
        for (i, training) in [None, Some(true), Some(false)].into_iter().enumerate() {
            let r = run(training)?;
            runs[i].frames.extend(r.frames);
            runs[i].checkpoints += r.checkpoints;
        }
    }
    let [idle, training, in_frame] = runs;
    let device = renderer.device_name().to_owned();
    drop(renderer);
    let messages = log.messages();
    if !messages.is_empty() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {}",
            messages.len(),
            messages[0]
        );
    }
    let eyes = if stereo { "2 eyes × " } else { "" };
    println!(
        "netwalk bench train: demo, {eyes}{width}x{height} on {device}, {} CPU threads; {rounds} rounds of {seconds} s per run; a checkpoint every {every} steps",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let idle_frames = idle.frames.len();
    let (idle_median, idle_p99) = ms_stats(idle.frames);
    println!(
        "  not training                  {idle_frames:>6} frames, median {idle_median:.3} ms  p99 {idle_p99:.3} ms"
    );
    for (what, r) in [
        ("training, rerun on the worker", training),
        ("training, rerun in the frame ", in_frame),
    ] {
        let n = r.frames.len();
        let (median, p99) = ms_stats(r.frames);
        println!(
            "  {what} {n:>6} frames, median {median:.3} ms  p99 {p99:.3} ms  ({:+.1}% / {:+.1}% vs not training; {} checkpoints arrived)",
            (median / idle_median - 1.0) * 100.0,
            (p99 / idle_p99 - 1.0) * 100.0,
            r.checkpoints
        );
    }
    Ok(())
}

fn bench_bundle(
    model: Option<PathBuf>,
    synthetic: Option<String>,
    iters: usize,
    frames: usize,
    ((width, height), stereo): ((u32, u32), bool),
    edge_scales: &[u32],
) -> Result<()> {
    let iters = iters.max(1);
    let warmup = 2;
    if let Some(bad) = edge_scales
        .iter()
        .find(|&&s| !(1..=gfx::edge_pass::MAX_SCALE).contains(&s))
    {
        bail!(
            "--edge-scale {bad}: each scale must be 1 to {}",
            gfx::edge_pass::MAX_SCALE
        );
    }
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    // The "next checkpoint" of the incremental updates: other random weights, blended in.
    let other = nn::synthetic::random_weights(&model, 8)?;
    let acts = nn::forward(&model, &weights, &raw)?;
    let placements = scene::layout(&model, scene::LayoutKind::Grid);
    let mut renderer = gfx::Renderer::new(&gfx::RendererConfig::from_env())?;
    let log = renderer.validation_log();
    let options = scene::edges::EdgeOptions {
        budget: scene::edges::DEFAULT_EDGE_BUDGET.min(renderer.max_bundled_edges()),
        ..Default::default()
    };
    let started = std::time::Instant::now();
    let mut edges = scene::edges::SceneEdges::build(&model, &weights, &acts, &placements, &options)?;
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    if edges.edges.is_empty() {
        bail!("{name} has no dense layer to bundle");
    }
    renderer.set_edges(&edges)?;
    // The level of detail set_edges chose for these edges (what the frames below draw).
    let drawn = renderer.bundle_drawn_segments();
    // (The frames below may draw them at other scales; the level of detail stays this one.)
    let walked = renderer.edge_scale() > 1;
    let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let mut full = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        renderer.rebundle();
        let t = ms(renderer.bundle_now()?);
        if i >= warmup {
            full.extend(t);
        }
    }
    let (mut incremental, mut revalue) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for i in 0..warmup + iters {
        // A step of a scrub between the two weight sets.
        let t = (i % 10) as f32 / 10.0;
        let blended = Weights::lerp(&weights, &other, t).context("blend the weights")?;
        let started = std::time::Instant::now();
        edges.values = edges.revalue(&model, &blended, &acts, &options)?;
        let cpu = started.elapsed().as_secs_f64() * 1e3;
        renderer.set_edge_values(&edges)?;
        let gpu = ms(renderer.bundle_now()?);
        if i >= warmup {
            incremental.extend(gpu);
            revalue.push(cpu);
        }
    }
    // Drawing them: a frame of the network with the bundled edges against one without.
    let frame_times = if frames > 0 {
        let draw = gfx::NetworkDraw::new(&model, &acts, &placements);
        let (min, max) = scene::layout::bounds(&placements);
        let camera = gfx::Camera::overview(min, max, width as f32 / height as f32);
        let views = if stereo {
            camera.stereo(0.064).to_vec()
        } else {
            vec![camera]
        };
        renderer.set_network(&draw)?;
        let measure = |renderer: &mut gfx::Renderer| -> Result<Vec<f64>> {
            let mut gpu = Vec::with_capacity(frames);
            for i in 0..warmup + frames {
                let t = renderer.time_frame(width, height, &views)?;
                if i >= warmup {
                    gpu.extend(ms(t.gpu));
                }
            }
            Ok(gpu)
        };
        let scales: Vec<Option<u32>> = if edge_scales.is_empty() {
            vec![None]
        } else {
            edge_scales.iter().map(|&s| Some(s)).collect()
        };
        let mut with = Vec::new();
        for scale in scales {
            renderer.set_edge_scale(scale);
            with.push((renderer.edge_scale(), measure(&mut renderer)?));
        }
        renderer.set_edges(&scene::edges::SceneEdges::default())?;
        let without = measure(&mut renderer)?;
        Some((with, without))
    } else {
        None
    };
    let device = renderer.device_name().to_owned();
    let max_edges = renderer.max_bundled_edges();
    drop(renderer);
    let messages = log.messages();
    if !messages.is_empty() {
        bail!(
            "Vulkan validation reported {} problem(s); first: {}",
            messages.len(),
            messages[0]
        );
    }
    println!(
        "netwalk bench bundle {name} on {device}: {} edges bundled in {} layer pair(s), {} dropped (this device holds {max_edges}); {} segments per edge, {g}x{g} grid per slice; {iters} runs",
        edges.edges.len(),
        edges.layers.len(),
        edges.dropped,
        gfx::bundle::SEGMENTS,
        g = gfx::bundle::GRID,
    );
    let n = edges.edges.len() as u64;
    if walked {
        println!(
            "  drawn: {drawn} segments per edge, walked by the low-resolution edge pass ({:.2}M segments per view; budget {:.2}M)",
            (n * u64::from(drawn)) as f64 / 1e6,
            gfx::bundle::WALK_SEGMENT_BUDGET as f64 / 1e6,
        );
    } else {
        let per_edge = gfx::bundle::vertices_per_edge(drawn);
        println!(
            "  drawn: {drawn} segments per edge as ribbons ({per_edge} vertices per edge, {:.2}M per view; budget {:.2}M)",
            (n * per_edge) as f64 / 1e6,
            gfx::bundle::VERTEX_BUDGET as f64 / 1e6,
        );
    }
    for l in &edges.layers {
        let agg = if l.aggregated { ", aggregated by channel" } else { "" };
        println!("  {:<12} {} edges{agg}", l.name, l.kept.len());
    }
    let line = |what: &str, times: Vec<f64>, note: String| {
        if times.is_empty() {
            println!("  {what:<20} GPU n/a (no timestamp queries){note}");
        } else {
            let (m, p) = ms_stats(times);
            println!("  {what:<20} GPU median {m:.3} ms  p99 {p:.3} ms{note}");
        }
    };
    line(
        "full recompute",
        full,
        format!("  ({} iterations from straight lines)", gfx::bundle::FULL_ITERATIONS),
    );
    line(
        "incremental update",
        incremental,
        format!(
            "  ({} iterations from the last result, new values uploaded)",
            gfx::bundle::INCREMENTAL_SIGMAS.len()
        ),
    );
    let (rm, _) = ms_stats(revalue);
    println!("  CPU: edges extracted and placed {build_ms:.1} ms; revalued per update median {rm:.1} ms");
    if let Some((with, without)) = frame_times {
        let eyes = if stereo { "2 eyes × " } else { "" };
        println!(
            "  frame {eyes}{width}x{height} (default edge scale for {} edges: {}):",
            edges.edges.len(),
            gfx::auto_edge_scale(edges.edges.len() as u32)
        );
        for (scale, times) in with {
            let how = if scale == 1 {
                "full resolution, in the scene pass".to_owned()
            } else {
                format!("1/{scale} resolution, added to the scene")
            };
            line(
                &format!("  edges at 1/{scale}"),
                times,
                format!("  (network + bundled edges, {how})"),
            );
        }
        line("  without edges", without, String::new());
    }
    Ok(())
}

fn bench_forward(
    model: Option<PathBuf>,
    synthetic: Option<String>,
    iters: usize,
    no_ort: bool,
    per_layer: bool,
) -> Result<()> {
    let iters = iters.max(1);
    let (model, weights, name, raw) = bench_model(model, synthetic.as_deref())?;
    let warmup = (iters / 10).clamp(1, 20);
    // Weights are prepared once, as the app does for each checkpoint; the loop times the forward.
    let engine = nn::Engine::new(&model, &weights)?;
    for _ in 0..warmup {
        engine.run(&raw);
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = std::time::Instant::now();
        std::hint::black_box(engine.run(&raw));
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let median = percentile(&times, 0.5);
    let threads = rayon::current_num_threads();
    println!(
        "netwalk forward {name}: median {median:.3} ms  p99 {:.3} ms  ({iters} iters, {} params, {} activations, {threads} CPU threads)",
        percentile(&times, 0.99),
        model.param_count(),
        model.activation_count()
    );
    if per_layer {
        let mut t = Vec::new();
        for _ in 0..iters {
            engine.run_timed(&raw, Some(&mut t));
        }
        let mut rows: Vec<(usize, f64)> = t.iter().map(|s| s / iters as f64 * 1e3).enumerate().collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("per layer (mean ms, slowest first):");
        for (i, ms) in rows {
            let l = &model.layers[i];
            println!(
                "  {:<28} {:<17} {:<18} {ms:.4}",
                l.name,
                l.op.name(),
                l.shape.to_string()
            );
        }
    }
    if no_ort {
        return Ok(());
    }
    let dir = tempfile_dir()?;
    let json = match &synthetic {
        Some(name) => nn::synthetic::write(name, &model, &weights, &dir)?,
        None => model.path.clone(),
    };
    let Some(script) = ort_script() else {
        println!("onnxruntime comparison skipped: tools/ort_bench.py not found (run from the checkout)");
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    };
    // ORT computing only the final output (fused, its best case) and every layer (what netwalk does).
    for all in [false, true] {
        let mut cmd = std::process::Command::new("python3");
        // The same number of threads as netwalk's own pool, for a like-for-like comparison.
        cmd.arg(&script).arg(&json).args(["--iters", &iters.to_string()]);
        cmd.args(["--threads", &threads.to_string()]);
        if all {
            cmd.arg("--all-layers");
        }
        match cmd.output() {
            Ok(o) if o.status.success() => {
                let line = String::from_utf8_lossy(&o.stdout);
                let ort = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("median_ms="))
                    .and_then(|v| v.parse::<f64>().ok());
                println!("{}", line.trim());
                if let Some(ort) = ort {
                    let what = if all { "every layer" } else { "last layer" };
                    println!("ratio netwalk / onnxruntime ({what}): {:.2}x", median / ort);
                }
            }
            Ok(o) => {
                println!(
                    "onnxruntime comparison skipped: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("ort_bench.py failed")
                );
                break;
            }
            Err(e) => {
                println!("onnxruntime comparison skipped: python3 not runnable ({e})");
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// tools/ort_bench.py: beside the current directory, else in the source checkout.
fn ort_script() -> Option<PathBuf> {
    [
        PathBuf::from("tools/ort_bench.py"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/ort_bench.py"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

fn tempfile_dir() -> Result<PathBuf> {
    let d = std::env::temp_dir().join(format!("netwalk-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).with_context(|| format!("{}: cannot create", d.display()))?;
    Ok(d)
}
