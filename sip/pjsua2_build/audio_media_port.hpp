/*
 * standin backport: pjsua2 AudioMediaPort for pjproject releases older than 2.14.
 *
 * pjproject 2.14 added pj::AudioMediaPort, an AudioMedia whose frames are produced and consumed
 * by application callbacks. The pjproject copy we can get offline (inside Debian's `ring`
 * source package) is a 2.12.1 fork without it. This is an independent implementation of the
 * same public interface, written for standin (see sip/README.md):
 *
 *   class AudioMediaPort : public AudioMedia
 *       void createPort(const string &name, MediaFormatAudio &fmt);
 *       virtual void onFrameRequested(MediaFrame &frame);   // conference bridge wants audio
 *       virtual void onFrameReceived(MediaFrame &frame);    // conference bridge delivers audio
 *
 * Both callbacks run on pjmedia's clock thread with the conference bridge locked: keep them short.
 *
 * This program is free software; you can redistribute it and/or modify it under the terms of the
 * GNU General Public License as published by the Free Software Foundation; either version 2 of
 * the License, or (at your option) any later version.
 */
#ifndef __PJSUA2_STANDIN_AUDIO_MEDIA_PORT_HPP__
#define __PJSUA2_STANDIN_AUDIO_MEDIA_PORT_HPP__

#include <pjsua2/media.hpp>
#include <vector>

namespace pj
{

/** Raw bytes of a media frame. */
typedef std::vector<unsigned char> ByteVector;

/**
 * One media frame handed to or taken from an AudioMediaPort.
 *
 * For audio, buf holds 16-bit signed little-endian PCM (interleaved when there is more than one
 * channel) and size is the number of valid bytes in buf.
 */
struct MediaFrame
{
    /** Frame type: PJMEDIA_FRAME_TYPE_AUDIO, or PJMEDIA_FRAME_TYPE_NONE for "no audio". */
    pjmedia_frame_type  type;

    /** Frame content. */
    ByteVector          buf;

    /** Number of valid bytes in buf. */
    unsigned            size;

public:
    /** An empty frame. */
    MediaFrame() : type(PJMEDIA_FRAME_TYPE_NONE), size(0)
    {}
};

/**
 * An audio media port in the conference bridge whose audio comes from and goes to the
 * application. Derive from it (in C++ or, through SWIG directors, in Python), call createPort(),
 * then connect it like any AudioMedia with startTransmit().
 *
 * onFrameRequested() is called when the bridge needs a frame from this port (only while the port
 * transmits to at least one sink). frame.size is preset to the number of bytes wanted and
 * frame.type to PJMEDIA_FRAME_TYPE_AUDIO; fill frame.buf (a short buffer is padded with silence)
 * or set frame.type to PJMEDIA_FRAME_TYPE_NONE to send nothing.
 *
 * onFrameReceived() is called with each audio frame the bridge mixed for this port (only while
 * some source transmits to it). Frames without audio are not delivered.
 *
 * Destroy every AudioMediaPort before Endpoint::libDestroy().
 */
class AudioMediaPort : public AudioMedia
{
public:
    /** Constructor. The port exists in the bridge only after createPort(). */
    AudioMediaPort();

    /** Removes the port from the conference bridge and frees it. */
    virtual ~AudioMediaPort();

    /**
     * Create the media port and add it to the conference bridge.
     *
     * @param name      Port name, shown in the bridge's port list.
     * @param fmt       Audio format: clockRate, channelCount, frameTimeUsec and bitsPerSample
     *                  (only 16 is supported). The bridge resamples when the clock rate differs
     *                  from its own.
     */
    void createPort(const string &name, MediaFormatAudio &fmt) PJSUA2_THROW(Error);

    /**
     * The bridge requests a frame from this port (pjmedia clock thread).
     *
     * @param frame     Preset as described above; fill buf (and size).
     */
    virtual void onFrameRequested(MediaFrame &frame);

    /**
     * The bridge delivers a frame to this port (pjmedia clock thread).
     *
     * @param frame     The audio frame; buf holds size bytes.
     */
    virtual void onFrameReceived(MediaFrame &frame);

#ifndef SWIG
private:
    pj_pool_t           *portPool;
    pjmedia_port        *mediaPort;

    void destroyPort();

    /* The port owns a pjmedia port registered in the bridge: not copyable. */
    AudioMediaPort(const AudioMediaPort &);
    AudioMediaPort &operator=(const AudioMediaPort &);

    static pj_status_t getFrameCb(pjmedia_port *port, pjmedia_frame *frame);
    static pj_status_t putFrameCb(pjmedia_port *port, pjmedia_frame *frame);
#endif
};

} // namespace pj

#endif /* __PJSUA2_STANDIN_AUDIO_MEDIA_PORT_HPP__ */
