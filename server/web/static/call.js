// The test call page: the microphone goes to /ws/call as 20 ms frames of 16 kHz int16 PCM, the bot's
// frames come back and play through a jitter buffer. The protocol is described in
// server/web/ws_transport.py. State for people (and tests) is on #call: data-state, data-bot-turns.
(() => {
  "use strict";

  const root = document.getElementById("call");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const startButton = $("call-start");
  const hangupButton = $("call-hangup");
  const statusLine = $("call-status");
  const micMeter = $("mic-level");
  const botMeter = $("bot-level");
  const botTurns = $("bot-turns");
  const logList = $("call-log");
  const stored = $("call-stored");
  const RATE = Number(root.dataset.rate || 16000);
  const FRAME = Number(root.dataset.frame || 320);
  const SPEAKING_RMS = 0.01; // a bot frame louder than this is speech
  const TURN_GAP_FRAMES = 35; // 700 ms of quiet between two bot turns

  let ctx = null;
  let ws = null;
  let mic = null;
  let micNode = null;
  let player = null;
  let ready = false;
  let ending = false;
  let turns = 0;
  let quietFrames = TURN_GAP_FRAMES;
  let started = 0;

  function setState(state, text) {
    root.dataset.state = state;
    if (text) statusLine.textContent = text;
    const idle = state === "idle" || state === "ended" || state === "error";
    startButton.disabled = !idle || root.dataset.available !== "true";
    hangupButton.disabled = state !== "connecting" && state !== "live";
  }

  function note(text) {
    const item = document.createElement("li");
    const at = started ? ((performance.now() - started) / 1000).toFixed(1) + " s" : "";
    item.textContent = at ? `${at}: ${text}` : text;
    logList.appendChild(item);
  }

  function rms(pcm) {
    let sum = 0;
    for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
    return Math.sqrt(sum / Math.max(1, pcm.length)) / 32768;
  }

  function botFrame(data) {
    const level = rms(new Int16Array(data));
    if (level > SPEAKING_RMS) {
      if (quietFrames >= TURN_GAP_FRAMES) {
        turns += 1;
        root.dataset.botTurns = String(turns);
        botTurns.textContent = String(turns);
        note(turns === 1 ? "standin answered" : "standin is speaking");
      }
      quietFrames = 0;
    } else {
      quietFrames += 1;
    }
    player.port.postMessage(data, [data]);
  }

  async function microphone() {
    return navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  }

  async function start() {
    if (!navigator.mediaDevices || !window.AudioWorkletNode) {
      setState("error", "This browser cannot make test calls (no microphone access or AudioWorklet; " +
        "use a current browser, over HTTPS or on localhost).");
      return;
    }
    if (ctx) cleanup(); // the last call's audio, still draining
    turns = 0;
    quietFrames = TURN_GAP_FRAMES;
    root.dataset.botTurns = "0";
    botTurns.textContent = "0";
    logList.textContent = "";
    stored.hidden = true;
    ending = false;
    ready = false;
    started = 0;
    setState("connecting", "Asking for the microphone…");
    try {
      // Ask first, so a refused microphone never becomes a stored call; the stream itself is opened
      // once the call is answered, so the caller's audio and the call's clock start together.
      (await microphone()).getTracks().forEach((t) => t.stop());
      ctx = new AudioContext({ latencyHint: "interactive" });
      await ctx.audioWorklet.addModule(root.dataset.micWorklet);
      await ctx.audioWorklet.addModule(root.dataset.playerWorklet);
      await ctx.resume();
    } catch (err) {
      cleanup();
      setState("error", `No microphone: ${err.message || err}`);
      return;
    }
    player = new AudioWorkletNode(ctx, "standin-player", {
      numberOfInputs: 0, outputChannelCount: [1], processorOptions: { rate: RATE },
    });
    const session = ctx;
    player.port.onmessage = (e) => {
      if (e.data.type === "level") botMeter.value = Math.min(1, e.data.rms * 4);
      else if (e.data.type === "drained" && ctx === session) cleanup();
    };
    player.connect(ctx.destination);
    setState("connecting", "Calling standin…");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${scheme}//${location.host}${root.dataset.ws}`);
    ws.binaryType = "arraybuffer";
    ws.onopen = () => ws.send(JSON.stringify({ type: "start", rate: RATE, frame: FRAME }));
    ws.onmessage = (e) => {
      if (e.data instanceof ArrayBuffer) botFrame(e.data);
      else control(JSON.parse(e.data));
    };
    ws.onclose = (e) => closed(e);
  }

  async function control(msg) {
    if (msg.type === "ready") {
      ready = true;
      started = performance.now();
      setState("live", "Connected: speak as a caller would.");
      note("call answered");
      try {
        mic = await microphone();
      } catch (err) {
        note(`microphone lost: ${err.message || err}`);
        hangUp();
        return;
      }
      if (ending || !ctx) {
        mic.getTracks().forEach((t) => t.stop());
        return;
      }
      micNode = new AudioWorkletNode(ctx, "standin-mic", {
        numberOfOutputs: 1, outputChannelCount: [1], processorOptions: { rate: RATE, frame: FRAME },
      });
      micNode.port.onmessage = (e) => {
        micMeter.value = Math.min(1, rms(new Int16Array(e.data)) * 4);
        if (ready && ws && ws.readyState === WebSocket.OPEN) ws.send(e.data);
      };
      ctx.createMediaStreamSource(mic).connect(micNode);
      micNode.connect(ctx.destination); // keeps it running; its output is silence
    } else if (msg.type === "hangup") {
      ending = true;
      stopMic();
      note(`standin hung up (${msg.reason})`);
      setState("ending", "standin hung up.");
    } else if (msg.type === "ended") {
      ending = true;
      root.dataset.callId = msg.call_id || "";
      stored.hidden = false;
      note("call stored");
    } else if (msg.type === "error") {
      note(`error: ${msg.message}`);
    }
  }

  function hangUp() {
    if (!ws || ending) return;
    ending = true;
    stopMic();
    setState("ending", "Hanging up…");
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "hangup" }));
    else ws.close();
  }

  function closed(e) {
    const answered = started !== 0;
    ready = false;
    ws = null;
    stopMic();
    if (e.code === 1000 || e.code === 1005) {
      setState("ended", `Call ended${e.reason ? ` (${e.reason})` : ""}.`);
    } else if (!answered && e.code === 1006) {
      setState("error", "Could not reach standin. Reload the page: you may have been logged out.");
    } else {
      setState("error", `The call stopped: ${e.reason || "connection lost"} (code ${e.code}).`);
    }
    note(`disconnected (${e.code})`);
    ending = true;
    if (player) {
      const session = ctx;
      player.port.postMessage({ type: "drain" }); // let the goodbye's last frames play out
      setTimeout(() => ctx === session && cleanup(), 3000);
    } else {
      cleanup();
    }
  }

  function stopMic() {
    if (micNode) micNode.port.onmessage = null;
    if (mic) mic.getTracks().forEach((t) => t.stop());
    mic = null;
  }

  function cleanup() {
    stopMic();
    micNode = null;
    player = null;
    if (ctx) ctx.close();
    ctx = null;
    micMeter.value = 0;
    botMeter.value = 0;
  }

  startButton.addEventListener("click", start);
  hangupButton.addEventListener("click", hangUp);
  window.addEventListener("pagehide", () => ws && ws.close());
  setState("idle");
})();
