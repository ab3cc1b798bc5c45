//! The three learners of the continual-learning study, one network shape:
//! hidden layers (two of 400 for the paper's MLP) and a head.

use candle_core::Var;
use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};
use ebm_core::training::adam::{Adam, AdamConfig};
use ebm_core::{Activation, LangevinConfig, ParamStore, ReplayBuffer, ReplayConfig, Rng};
use serde::{Deserialize, Serialize};

use super::dreams::{dream, DreamConfig};

/// How a learner scores labels and which labels its training contrasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// `E(x, y)` with the label as an input (per-class biases on every
    /// hidden layer, a scalar head); trained on the cross-entropy of
    /// `softmax_{y in task}(-E(x, y))`; classifies by the lowest energy.
    Ebm,
    /// A softmax classifier (one logit per class) trained by cross-entropy
    /// over all classes: the forgetting baseline.
    Softmax,
    /// The same classifier trained by cross-entropy over the current task's
    /// classes only (the "labels trick"), the contrast the EBM's training has.
    SoftmaxTaskLabels,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ebm => "EBM",
            Self::Softmax => "softmax",
            Self::SoftmaxTaskLabels => "softmax, task labels",
        }
    }

    /// Whether training contrasts only the current task's labels.
    fn task_labels_only(self) -> bool {
        !matches!(self, Self::Softmax)
    }
}

/// One learner's settings (each chosen on the validation digits).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MethodSettings {
    pub method: Method,
    /// Passes over each task's training digits.
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// The EBM's energy regulariser `alpha * mean E^2` over the energies of
    /// each step (the paper's L2 term; ignored by the softmax learners).
    #[serde(default)]
    pub alpha: f64,
    /// The EBM's contrast of each digit's label against the current task's
    /// other labels (Li et al.'s recipe); on unless set false.
    #[serde(default = "default_true")]
    pub label_contrast: bool,
    /// The paper's generative training of the EBM (Algorithm 1 on the joint
    /// of image and label): each digit's negative drawn by this Langevin
    /// chain from uniform noise in `[0, 1]` under the digit's own label, so
    /// a task's training pushes energies up only under its own labels; the
    /// step adds `E(x+, y) - E(x-, y)` and `alpha * E(x-, y)^2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub langevin: Option<LangevinConfig>,
    /// Algorithm 1's replay buffer for the Langevin negatives: most chains
    /// start from an earlier negative (images only: every chain runs under
    /// its digit's label, so a negative drawn for an old task's class
    /// restarts under the current task's), the rest from uniform noise.
    /// The buffer holds only the model's own samples, never training digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplayConfig>,
    /// Where the EBM's label enters (ignored by the softmax learners).
    #[serde(default)]
    pub label_input: LabelInput,
    /// Replay of the learner's own dreams of earlier tasks' classes
    /// (`dreams.rs`): each step adds the cross-entropy of dreams of the old
    /// classes over every class seen so far (the digits themselves keep
    /// their method's contrast).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dreams: Option<DreamConfig>,
}

/// Where the EBM's label enters its network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelInput {
    /// Per-class biases before and gains after every hidden layer's
    /// activation, a scalar head (as the official image network conditions
    /// its blocks).
    #[default]
    Layers,
    /// At the output only: `E(x, y) = -(w_y . h(x) + b_y)`, a one-hot label
    /// dotted with the features of a label-free network (the joint energy of
    /// a classifier's logits, as in Grathwohl et al.'s JEM).
    Head,
}

fn default_true() -> bool {
    true
}

impl MethodSettings {
    /// The learner's name in tables and figures, naming the EBM's variant
    /// and the dreams if any.
    pub fn name(&self) -> String {
        match self.dreams {
            Some(_) => format!("{} + dreams", self.base_name()),
            None => self.base_name().into(),
        }
    }

    fn base_name(&self) -> &'static str {
        if self.method != Method::Ebm {
            return self.method.name();
        }
        let replay = self.replay.is_some();
        match (self.label_contrast, self.langevin.is_some(), replay) {
            (false, _, false) => "EBM, generative (Langevin negatives)",
            (false, _, true) => "EBM, generative (Langevin negatives, replay buffer)",
            (true, true, false) => "EBM, label contrast + Langevin negatives",
            (true, true, true) => "EBM, label contrast + Langevin negatives (replay buffer)",
            (true, false, _) if self.label_input == LabelInput::Head => "EBM, label at the head",
            (true, false, _) => Method::Ebm.name(),
        }
    }
}

struct Layer {
    w: Tensor,
    b: Tensor,
    /// `[classes, width]` each: the EBM's per-class biases (added before the
    /// activation) and gains (multiplying after it), as the official image
    /// network conditions its blocks.
    class_bias: Option<Tensor>,
    class_gain: Option<Tensor>,
}

/// One learner: its parameters, optimiser and method.
pub struct Learner {
    method: Method,
    /// Whether the label enters the hidden layers (a scalar head) rather
    /// than picking one of the head's outputs.
    label_in_layers: bool,
    act: Activation,
    layers: Vec<Layer>,
    head_w: Tensor,
    head_b: Tensor,
    params: ParamStore,
    adam: Adam,
    classes: usize,
    /// Weight of the energy regulariser `alpha * mean E^2` (EBM only).
    alpha: f64,
    label_contrast: bool,
    langevin: Option<LangevinConfig>,
    replay: Option<ReplayBuffer>,
    /// Starts and noise of the Langevin negatives.
    rng: Rng,
    dreams: Option<DreamConfig>,
    /// Labels, starts and noise of the dreams.
    dream_rng: Rng,
}

fn weight(vb: &VarBuilder, name: &str, out: usize, inp: usize) -> Result<Tensor> {
    let stdev = (1.0 / inp as f64).sqrt();
    vb.get_with_hints((out, inp), name, Init::Randn { mean: 0.0, stdev })
}

impl Learner {
    /// A fresh learner for inputs of `dim` values and `classes` classes.
    pub fn new(
        settings: &MethodSettings,
        [dim, classes]: [usize; 2],
        hidden: &[usize],
        act: Activation,
        adam: AdamConfig,
        seed: u64,
        device: &Device,
    ) -> anyhow::Result<Self> {
        let method = settings.method;
        if let Some(l) = &settings.langevin {
            anyhow::ensure!(
                method == Method::Ebm,
                "methods: langevin negatives are for the EBM, not {method:?}"
            );
            l.validate()?;
        }
        if let Some(d) = &settings.dreams {
            d.validate()?;
        }
        anyhow::ensure!(
            settings.replay.is_none() || settings.langevin.is_some(),
            "methods: a replay buffer needs langevin negatives"
        );
        anyhow::ensure!(
            settings.label_contrast || settings.langevin.is_some() || method != Method::Ebm,
            "methods: an EBM without label_contrast needs langevin negatives to learn anything"
        );
        let adam = AdamConfig {
            lr: settings.lr,
            ..adam
        };
        let label_in_layers = method == Method::Ebm && settings.label_input == LabelInput::Layers;
        let params = ParamStore::new(seed, device);
        let vb = params.var_builder();
        let mut layers = Vec::new();
        let mut width = dim;
        for (i, &h) in hidden.iter().enumerate() {
            let vb = vb.pp(format!("layer{i}"));
            layers.push(Layer {
                w: weight(&vb, "weight", h, width)?,
                b: vb.get_with_hints(h, "bias", Init::Const(0.0))?,
                class_bias: label_in_layers
                    .then(|| vb.get_with_hints((classes, h), "class_bias", Init::Const(0.0)))
                    .transpose()?,
                class_gain: label_in_layers
                    .then(|| vb.get_with_hints((classes, h), "class_gain", Init::Const(1.0)))
                    .transpose()?,
            });
            width = h;
        }
        let outputs = if label_in_layers { 1 } else { classes };
        let head_w = weight(&vb.pp("head"), "weight", outputs, width)?;
        let head_b = vb
            .pp("head")
            .get_with_hints(outputs, "bias", Init::Const(0.0))?;
        Ok(Self {
            method,
            label_in_layers,
            act,
            layers,
            head_w,
            head_b,
            params,
            adam: Adam::new(adam)?,
            classes,
            alpha: if method == Method::Ebm {
                settings.alpha
            } else {
                0.0
            },
            label_contrast: settings.label_contrast || method != Method::Ebm,
            langevin: settings.langevin.clone(),
            replay: settings
                .replay
                .clone()
                .map(|r| ReplayBuffer::new(r, dim, 0))
                .transpose()?,
            rng: Rng::derived(seed, "continual negatives"),
            dreams: settings.dreams.clone(),
            dream_rng: Rng::derived(seed, "continual dreams"),
        })
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Logits `[B, classes.len()]` (higher: more likely) of `x: [B, d]` for
    /// the labels `classes`: `-E(x, y)` for the EBM, the classifier's logits
    /// otherwise (the same thing for an EBM with its label at the head).
    pub fn logits(&self, x: &Tensor, classes: &[u8]) -> Result<Tensor> {
        if !self.label_in_layers {
            let all = self.head(&self.hidden(x, None)?)?;
            let idx: Vec<u32> = classes.iter().map(|&c| u32::from(c)).collect();
            let idx = Tensor::from_vec(idx, classes.len(), x.device())?;
            return all.index_select(&idx, 1);
        }
        let energies = classes
            .iter()
            .map(|&c| self.head(&self.hidden(x, Some(usize::from(c)))?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&energies, 1)?.neg()
    }

    fn hidden(&self, x: &Tensor, class: Option<usize>) -> Result<Tensor> {
        let mut h = x.clone();
        for l in &self.layers {
            let mut z = h.matmul(&l.w.t()?)?.broadcast_add(&l.b)?;
            if let (Some(cb), Some(c)) = (&l.class_bias, class) {
                z = z.broadcast_add(&cb.narrow(0, c, 1)?)?;
            }
            h = self.act.apply(&z)?;
            if let (Some(cg), Some(c)) = (&l.class_gain, class) {
                h = h.broadcast_mul(&cg.narrow(0, c, 1)?)?;
            }
        }
        Ok(h)
    }

    /// `E(x, y)` of each row under its own label: `[B]`.
    fn energy_labelled(&self, x: &Tensor, labels: &Tensor) -> Result<Tensor> {
        if !self.label_in_layers {
            let all = self.head(&self.hidden(x, None)?)?;
            return all.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)?.neg();
        }
        let mut h = x.clone();
        for l in &self.layers {
            let mut z = h.matmul(&l.w.t()?)?.broadcast_add(&l.b)?;
            if let Some(cb) = &l.class_bias {
                z = (z + cb.index_select(labels, 0)?)?;
            }
            h = self.act.apply(&z)?;
            if let Some(cg) = &l.class_gain {
                h = (h * cg.index_select(labels, 0)?)?;
            }
        }
        self.head(&h)?.squeeze(1)
    }

    /// Negatives of each row's label: the Langevin chain from the replay
    /// buffer or uniform noise, no gradient kept through it.
    fn negatives(&mut self, labels: &Tensor, rows: usize, dim: usize) -> Result<Tensor> {
        let Some(cfg) = self.langevin.clone() else {
            candle_core::bail!("no langevin settings");
        };
        let device = labels.device();
        let mut x = match &self.replay {
            Some(buffer) => buffer.draw(rows, None, None, &mut self.rng, device)?.x,
            None => {
                let start = self.rng.uniform_vec(rows * dim, 0.0, 1.0);
                Tensor::from_vec(start, (rows, dim), device)?
            }
        };
        for _ in 0..cfg.steps {
            let v = Var::from_tensor(&x)?;
            let grads = self
                .energy_labelled(v.as_tensor(), labels)?
                .sum_all()?
                .backward()?;
            let mut g = grads.get(v.as_tensor()).cloned().unwrap_or(x.zeros_like()?);
            if let Some(c) = cfg.grad_clip {
                g = g.clamp(-c, c)?;
            }
            let noise = self.rng.normal_vec(rows * dim);
            let noise = Tensor::from_vec(noise, (rows, dim), device)?;
            x = ((x - (g * cfg.step_size)?)? + (noise * cfg.noise_scale)?)?;
            if let Some([lo, hi]) = cfg.clamp {
                x = x.clamp(lo, hi)?;
            }
        }
        let x = x.detach();
        if let Some(buffer) = &mut self.replay {
            buffer.push(&x, None)?;
        }
        Ok(x)
    }

    fn head(&self, h: &Tensor) -> Result<Tensor> {
        h.matmul(&self.head_w.t()?)?.broadcast_add(&self.head_b)
    }

    /// One Adam step on a batch of one task (`task`: its classes; `old`:
    /// the classes of the tasks before): the cross-entropy over the task's
    /// labels, or over all classes for the plain softmax; for an EBM with
    /// Langevin negatives, the paper's contrastive term too; with dreams,
    /// the cross-entropy of dreams of `old` over every class seen. Returns
    /// the loss.
    pub fn step(
        &mut self,
        x: &Tensor,
        labels: &[u8],
        task: &[u8],
        old: &[u8],
    ) -> anyhow::Result<f64> {
        let all: Vec<u8> = (0..self.classes as u8).collect();
        let seen: Vec<u8> = old.iter().chain(task).copied().collect();
        let dreaming = self.dreams.is_some() && !old.is_empty();
        let contrast = if self.method.task_labels_only() {
            task
        } else {
            &all
        };
        let dream_contrast = if self.method.task_labels_only() {
            &seen
        } else {
            &all
        };
        let targets: Vec<u32> = labels
            .iter()
            .map(|l| {
                contrast
                    .iter()
                    .position(|c| c == l)
                    .map(|p| p as u32)
                    .ok_or_else(|| anyhow::anyhow!("label {l} is not in the task {contrast:?}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let targets = Tensor::from_vec(targets, labels.len(), x.device())?;
        let mut loss = Tensor::zeros((), DType::F32, x.device())?;
        if self.label_contrast {
            let logits = self.logits(x, contrast)?;
            loss = (loss + candle_nn::loss::cross_entropy(&logits, &targets)?)?;
            if self.alpha > 0.0 {
                // The paper's energy regulariser on every energy the step sees.
                loss = (loss + (logits.sqr()?.mean_all()? * self.alpha)?)?;
            }
        }
        if self.langevin.is_some() {
            let ids: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
            let ids = Tensor::from_vec(ids, labels.len(), x.device())?;
            let (rows, dim) = x.dims2()?;
            let negatives = self.negatives(&ids, rows, dim)?;
            let pos = self.energy_labelled(x, &ids)?;
            let neg = self.energy_labelled(&negatives, &ids)?;
            let mut term = (pos.mean_all()? - neg.mean_all()?)?;
            if self.alpha > 0.0 {
                let squares = (pos.sqr()?.mean_all()? + neg.sqr()?.mean_all()?)?;
                term = (term + (squares * self.alpha)?)?;
            }
            loss = (loss + term)?;
        }
        if let (true, Some(cfg)) = (dreaming, &self.dreams) {
            let dim = x.dims2()?.1;
            let mut rng = self.dream_rng.clone();
            let (dreams, dreamt) = dream(
                |x, among| self.logits(x, among),
                cfg,
                [cfg.per_batch, dim],
                old,
                dream_contrast,
                &mut rng,
                x.device(),
            )?;
            self.dream_rng = rng;
            let at: Vec<u32> = dreamt
                .iter()
                .map(|l| dream_contrast.iter().position(|c| c == l).unwrap_or(0) as u32)
                .collect();
            let at = Tensor::from_vec(at, dreamt.len(), x.device())?;
            let logits = self.logits(&dreams, dream_contrast)?;
            loss = (loss + candle_nn::loss::cross_entropy(&logits, &at)?)?;
        }
        let grads = loss.backward()?;
        self.adam.step(&self.params, &grads)?;
        Ok(f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?))
    }

    /// The predicted class of each row of `x` among `classes`.
    pub fn predict(&self, x: &Tensor, classes: &[u8]) -> Result<Vec<u8>> {
        let best: Vec<u32> = self.logits(x, classes)?.argmax(D::Minus1)?.to_vec1()?;
        Ok(best.into_iter().map(|i| classes[i as usize]).collect())
    }
}
