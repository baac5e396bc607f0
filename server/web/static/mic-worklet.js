// The microphone, resampled to the call rate (16 kHz) and cut into 20 ms frames of int16 samples, which
// go to the page (call.js) as transferable buffers. Downsampling low-passes first (a windowed sinc),
// then interpolates linearly between the filtered samples.

class MicProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.rate = opts.rate || 16000;
    this.frame = opts.frame || 320;
    this.step = sampleRate / this.rate; // input samples per output sample
    this.taps = this.step > 1 ? lowPass(0.45 * this.rate / sampleRate, Math.ceil(this.step * 16) | 1) : null;
    this.history = new Float32Array(this.taps ? this.taps.length : 1);
    this.h = 0; // where the next input sample goes in `history`
    this.k = 0; // index of the next input sample
    this.next = 0; // input-sample position of the next output sample
    this.prev = 0; // the previous filtered input sample
    this.out = new Int16Array(this.frame);
    this.n = 0;
  }

  filtered(x) {
    if (!this.taps) return x;
    const hist = this.history;
    const len = hist.length;
    hist[this.h] = x;
    this.h = (this.h + 1) % len;
    let y = 0;
    for (let i = 0, j = this.h; i < len; i++, j = j + 1 === len ? 0 : j + 1) y += this.taps[i] * hist[j];
    return y;
  }

  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.out[this.n++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    if (this.n === this.frame) {
      const buf = this.out.buffer;
      this.port.postMessage(buf, [buf]);
      this.out = new Int16Array(this.frame);
      this.n = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    const ch = input && input[0];
    if (!ch) return true; // not connected (yet)
    for (let i = 0; i < ch.length; i++) {
      const y = this.filtered(ch[i]);
      while (this.next <= this.k) {
        const frac = this.next - (this.k - 1);
        this.emit(this.prev + (y - this.prev) * frac);
        this.next += this.step;
      }
      this.prev = y;
      this.k++;
    }
    return true;
  }
}

function lowPass(cutoff, n) {
  // cutoff in cycles per input sample; a Hamming-windowed sinc of n taps, unity gain at DC
  const taps = new Float32Array(n);
  const m = (n - 1) / 2;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const t = i - m;
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
    taps[i] = sinc * (0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (n - 1)));
    sum += taps[i];
  }
  for (let i = 0; i < n; i++) taps[i] /= sum;
  return taps;
}

registerProcessor("standin-mic", MicProcessor);
