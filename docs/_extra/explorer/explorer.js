// The latent explorer: a VAE's decoder, exported by a notebook's full run (vae_utils/explorer.py), evaluated
// here at every move of the point. The decoder is a chain of dense layers, h <- act(h W + b), then the image:
// sigmoid(logits) for MNIST's Bernoulli pixels, the clipped locations for the faces' logistic pixels. The same
// arithmetic in NumPy is vae_utils.explorer.decode. Plain JavaScript: no framework, nothing from another host.
"use strict";

(function () {
  const FORMAT = "vae-latent-explorer/1";
  // matplotlib's tab10, as in the notebooks' latent scatter plots
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const $ = (id) => document.getElementById(id);
  const state = { model: null, z: [0, 0], view: 3, loaded: {} };

  // ---- the exported arrays: little-endian bytes in base64 -------------------------------------------
  function halfToFloat(h) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) return sign * fraction * 2 ** -24; // subnormal
    if (exponent === 31) return fraction ? NaN : sign * Infinity;
    return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }

  function array(entry) {
    const text = atob(entry.base64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    if (entry.dtype === "uint8") return bytes;
    if (entry.dtype !== "float16") throw new Error(`unknown dtype ${entry.dtype}`);
    const view = new DataView(bytes.buffer);
    const values = new Float32Array(bytes.length / 2);
    for (let i = 0; i < values.length; i++) values[i] = halfToFloat(view.getUint16(2 * i, true));
    return values;
  }

  // ---- the decoder ------------------------------------------------------------------------------------
  const ACTIVATIONS = {
    linear: (a) => a,
    relu: (a) => Math.max(a, 0),
    softplus: (a) => (a > 0 ? a + Math.log1p(Math.exp(-a)) : Math.log1p(Math.exp(a))),
    sigmoid: (a) => 1 / (1 + Math.exp(-a)),
    tanh: Math.tanh,
  };

  function decode(model, z) {
    let h = Float32Array.from(z);
    for (const layer of model.layers) {
      const [nIn, nOut] = layer.shape;
      const out = Float32Array.from(layer.bias);
      for (let i = 0; i < nIn; i++) {
        const hi = h[i];
        const row = i * nOut;
        for (let j = 0; j < nOut; j++) out[j] += hi * layer.kernel[row + j];
      }
      const act = ACTIVATIONS[layer.activation];
      for (let j = 0; j < nOut; j++) out[j] = act(out[j]);
      h = out;
    }
    if (model.output === "sigmoid") return h.map((a) => 1 / (1 + Math.exp(-a)));
    return h.map((a) => Math.min(Math.max(a, 0), 1));
  }

  function prepare(data) {
    if (data.format !== FORMAT) throw new Error(`expected an export of format ${FORMAT}, found ${data.format}`);
    const codes = array(data.codes);
    // a square view holding the prior's 3 standard deviations and all but the farthest 0.1 % of the codes
    const radii = Array.from(codes, Math.abs).sort((a, b) => a - b);
    const view = Math.ceil(2 * Math.max(3, radii[Math.floor(0.999 * (radii.length - 1))])) / 2;
    return {
      ...data,
      codes,
      view,
      labels: data.labels ? array(data.labels) : null,
      layers: data.layers.map((layer) => ({
        shape: layer.kernel.shape,
        kernel: array(layer.kernel),
        bias: array(layer.bias),
        activation: layer.activation,
      })),
    };
  }

  // ---- drawing ----------------------------------------------------------------------------------------
  const canvas = $("latent");
  const image = $("image");
  let backdrop = null; // the codes, drawn once per model

  function toPixel(z, size) {
    const v = state.model.view;
    return [((z[0] + v) / (2 * v)) * size, ((v - z[1]) / (2 * v)) * size];
  }

  function toLatent(x, y, size) {
    const v = state.model.view;
    const clamp = (a) => Math.min(Math.max(a, -v), v);
    return [clamp((x / size) * 2 * v - v), clamp(v - (y / size) * 2 * v)];
  }

  function drawBackdrop(size) {
    const model = state.model;
    backdrop = document.createElement("canvas");
    backdrop.width = backdrop.height = size;
    const ctx = backdrop.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    ctx.strokeStyle = "#e4e4e4";
    ctx.fillStyle = "#777";
    ctx.font = `${Math.round(size / 40)}px sans-serif`;
    for (let t = -Math.floor(model.view); t <= model.view; t++) {
      const [x, y] = toPixel([t, t], size);
      ctx.beginPath();
      ctx.moveTo(x, 0); ctx.lineTo(x, size); ctx.moveTo(0, y); ctx.lineTo(size, y);
      ctx.stroke();
      ctx.fillText(String(t), x + 3, size - 4);
      if (t !== 0) ctx.fillText(String(t), 3, y - 3);
    }
    ctx.fillStyle = "#333";
    ctx.font = `italic ${Math.round(size / 30)}px serif`;
    ctx.fillText("z\u2081", size - size / 18, size - size / 22); // the axes' names: z1 across, z2 up
    ctx.fillText("z\u2082", size / 40, size / 20);
    const dot = Math.max(2, size / 220);
    ctx.globalAlpha = model.labels ? 0.6 : 0.5;
    for (let i = 0; i < model.codes.length / 2; i++) {
      const [x, y] = toPixel([model.codes[2 * i], model.codes[2 * i + 1]], size);
      ctx.fillStyle = model.labels ? COLOURS[model.labels[i] % COLOURS.length] : "#555";
      ctx.fillRect(x - dot / 2, y - dot / 2, dot, dot);
    }
    ctx.globalAlpha = 1;
  }

  function drawLatent() {
    const size = canvas.width;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(backdrop, 0, 0);
    if ($("grid").checked) {
      ctx.strokeStyle = "rgba(0, 0, 0, 0.35)";
      ctx.lineWidth = 1;
      for (const q of state.model.grid) {
        const [x, y] = toPixel([q, q], size);
        ctx.beginPath();
        ctx.moveTo(x, 0); ctx.lineTo(x, size); ctx.moveTo(0, y); ctx.lineTo(size, y);
        ctx.stroke();
      }
    }
    const [x, y] = toPixel(state.z, size);
    ctx.lineWidth = Math.max(2, size / 200);
    for (const [colour, r] of [["#fff", 0.028], ["#000", 0.022]]) {
      ctx.strokeStyle = colour;
      ctx.beginPath();
      ctx.arc(x, y, r * size, 0, 2 * Math.PI);
      ctx.stroke();
    }
  }

  function drawImage() {
    const { height, width } = state.model.image;
    const pixels = decode(state.model, state.z);
    const ctx = image.getContext("2d");
    const frame = ctx.createImageData(width, height);
    for (let i = 0; i < pixels.length; i++) {
      const grey = Math.round(255 * pixels[i]);
      frame.data.set([grey, grey, grey, 255], 4 * i);
    }
    ctx.putImageData(frame, 0, 0);
    const [z1, z2] = state.z.map((a) => (a < 0 ? "\u2212" : "") + Math.abs(a).toFixed(2));
    $("coordinates").textContent = `z = (${z1}, ${z2})`;
  }

  function update() {
    drawLatent();
    drawImage();
  }

  function setLatent(z1, z2) {
    const v = state.model.view;
    state.z = [Math.min(Math.max(z1, -v), v), Math.min(Math.max(z2, -v), v)];
    update();
  }

  // ---- the models -------------------------------------------------------------------------------------
  function load(entry) {
    if (state.loaded[entry.name]) return Promise.resolve(state.loaded[entry.name]);
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = entry.script;
      script.onload = () => {
        const data = (window.VAE_EXPLORER_DATA || {})[entry.name];
        if (!data) reject(new Error(`${entry.script} holds no model ${entry.name}`));
        else resolve((state.loaded[entry.name] = prepare(data)));
      };
      script.onerror = () => reject(new Error(`could not load ${entry.script}`));
      document.head.appendChild(script);
    });
  }

  function describe(model) {
    const p = model.provenance;
    const error = (255 * model.float16_error.max).toFixed(2);
    $("provenance").textContent =
      `${model.title}: the decoder of notebook ${p.notebook}, ${p.profile} run of ${p.created.slice(0, 10)} ` +
      `(identity ${p.identity}, ${p.backend} backend), ${(model.codes.length / 2).toLocaleString("en")} test codes. Its weights are ` +
      `stored as float16: the images drawn here differ from the trained decoder's by at most ${error} of 255 ` +
      `grey levels (measured at export on ${model.float16_error.codes} codes). Reproduce: ${p.reproduce}.`;
    $("legend").replaceChildren(
      ...(model.labels ? model.label_names : []).map((name, k) => {
        const item = document.createElement("span");
        const swatch = document.createElement("i");
        swatch.style.background = COLOURS[k % COLOURS.length];
        item.append(swatch, name);
        return item;
      })
    );
  }

  async function select(name) {
    const index = window.VAE_EXPLORER_INDEX || [];
    const entry = index.find((e) => e.name === name);
    if (!entry) throw new Error(`no model ${name}; the site has ${index.map((e) => e.name).join(", ")}`);
    $("status").textContent = `Loading ${entry.title}\u2026`;
    state.model = await load(entry);
    for (const button of $("models").children) {
      button.setAttribute("aria-pressed", String(button.dataset.name === name));
    }
    image.width = state.model.image.width;
    image.height = state.model.image.height;
    const size = Math.round(canvas.getBoundingClientRect().width * (window.devicePixelRatio || 1));
    canvas.width = canvas.height = size;
    drawBackdrop(size);
    describe(state.model);
    $("status").textContent = "";
    try {
      history.replaceState(null, "", `#${name}`); // the address names the model shown
    } catch {
      // some browsers refuse it for file:// pages
    }
    // start at the codes' mean: where the test images are, which need not be the prior's centre
    const n = state.model.codes.length / 2;
    const mean = [0, 1].map((d) => state.model.codes.filter((_, i) => i % 2 === d).reduce((a, b) => a + b, 0) / n);
    setLatent(mean[0], mean[1]);
  }

  // ---- input: pointer (mouse, pen, touch) and keyboard ------------------------------------------------
  function fromEvent(event) {
    const box = canvas.getBoundingClientRect();
    const scale = canvas.width / box.width;
    const [z1, z2] = toLatent((event.clientX - box.left) * scale, (event.clientY - box.top) * scale, canvas.width);
    setLatent(z1, z2);
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (!state.model) return;
    canvas.setPointerCapture(event.pointerId);
    canvas.focus();
    fromEvent(event);
  });
  canvas.addEventListener("pointermove", (event) => {
    if (state.model && canvas.hasPointerCapture(event.pointerId)) fromEvent(event);
  });
  canvas.addEventListener("keydown", (event) => {
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, 1], ArrowDown: [0, -1] };
    if (!state.model || !(event.key in steps)) return;
    event.preventDefault();
    const step = event.shiftKey ? 0.5 : 0.05;
    setLatent(state.z[0] + step * steps[event.key][0], state.z[1] + step * steps[event.key][1]);
  });
  $("grid").addEventListener("change", () => state.model && drawLatent());

  // ---- start ------------------------------------------------------------------------------------------
  const index = window.VAE_EXPLORER_INDEX || [];
  for (const entry of index) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = entry.title;
    button.dataset.name = entry.name;
    button.addEventListener("click", () => select(entry.name).catch(fail));
    $("models").appendChild(button);
  }

  function fail(error) {
    $("status").textContent = `The explorer could not start: ${error.message}`;
    throw error;
  }

  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = index.find((e) => e.name === wanted) || index[0];
  const ready = first
    ? select(first.name).catch(fail)
    : Promise.resolve(($("status").textContent =
        "No decoder has been exported yet: the full runs of notebooks 01 and 04 export them."));

  // for the tests, and for anyone curious in the browser's console
  window.latentExplorer = {
    ready,
    select,
    setLatent,
    decode: (z) => Array.from(decode(state.model, z)),
    get latent() { return state.z.slice(); },
    get model() { return state.model && state.model.name; },
    pixels() {
      const { width, height } = state.model.image;
      const rgba = image.getContext("2d").getImageData(0, 0, width, height).data;
      return Array.from({ length: width * height }, (_, i) => rgba[4 * i]);
    },
  };
})();
