// The bot's voice: 20 ms frames of int16 samples at the call rate (16 kHz) from the page, played through
// a small jitter buffer and resampled to the output rate by linear interpolation.
// Playback starts (and restarts after running dry) once `prebufferMs` of audio is queued; past
// `maxMs` the oldest audio is skipped, so a burst never turns into lasting delay. Every ~50 ms the
// page gets {type: "level", rms, bufferedMs, underruns, droppedMs}; after "drain", {type: "drained"}
// once everything queued has played.

class PlayerProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = options.processorOptions || {};
    this.rate = opts.rate || 16000;
    this.prebuffer = Math.round(((opts.prebufferMs || 60) * this.rate) / 1000);
    this.max = Math.round(((opts.maxMs || 300) * this.rate) / 1000);
    this.step = this.rate / sampleRate; // call-rate samples per output sample
    this.buf = new Float32Array(1 << 15);
    this.mask = this.buf.length - 1;
    this.w = 0; // samples written, in all
    this.r = 0; // read position (fractional), in the same count
    this.playing = false;
    this.draining = false;
    this.underruns = 0;
    this.dropped = 0;
    this.sum = 0;
    this.count = 0;
    this.reportEvery = Math.round(sampleRate / 20);
    this.port.onmessage = (e) => this.message(e.data);
  }

  message(data) {
    if (data instanceof ArrayBuffer) {
      const pcm = new Int16Array(data);
      for (let i = 0; i < pcm.length; i++) this.buf[(this.w + i) & this.mask] = pcm[i] / 32768;
      this.w += pcm.length;
      if (this.w - this.r > this.max) {
        const skip = Math.floor(this.w - this.r - this.prebuffer);
        this.r += skip;
        this.dropped += skip;
      }
    } else if (data && data.type === "drain") {
      this.draining = true;
    }
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    if (!this.playing && (this.w - this.r >= this.prebuffer || (this.draining && this.w - this.r >= 1))) {
      this.playing = true;
    }
    for (let i = 0; i < out.length; i++) {
      let v = 0;
      if (this.playing) {
        const j = Math.floor(this.r);
        if (j + 1 < this.w) {
          const frac = this.r - j;
          v = this.buf[j & this.mask] * (1 - frac) + this.buf[(j + 1) & this.mask] * frac;
          this.r += this.step;
        } else {
          this.playing = false;
          if (!this.draining) this.underruns++;
        }
      }
      out[i] = v;
      this.sum += v * v;
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    this.count += out.length;
    if (this.count >= this.reportEvery) {
      this.port.postMessage({
        type: "level",
        rms: Math.sqrt(this.sum / this.count),
        bufferedMs: Math.max(0, ((this.w - this.r) * 1000) / this.rate),
        underruns: this.underruns,
        droppedMs: (this.dropped * 1000) / this.rate,
      });
      this.sum = 0;
      this.count = 0;
    }
    if (this.draining && !this.playing && this.w - this.r < 1) {
      this.port.postMessage({ type: "drained" });
      this.draining = false;
    }
    return true;
  }
}

registerProcessor("standin-player", PlayerProcessor);
