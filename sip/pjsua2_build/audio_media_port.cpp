/*
 * standin backport: pjsua2 AudioMediaPort for pjproject releases older than 2.14.
 * See audio_media_port.hpp and sip/README.md.
 *
 * This program is free software; you can redistribute it and/or modify it under the terms of the
 * GNU General Public License as published by the Free Software Foundation; either version 2 of
 * the License, or (at your option) any later version.
 */
#include <pjsua2/audio_media_port.hpp>
#include <pjsua2/endpoint.hpp>
#include <pj/assert.h>
#include <pj/pool.h>
#include <pj/string.h>
#include <pjmedia/port.h>
#include <pjmedia/signatures.h>

using namespace pj;
using namespace std;

#define THIS_FILE               "audio_media_port.cpp"
#define SIGNATURE               PJMEDIA_SIG_CLASS_APP('S', 'A', 'P')

/* Make sure the calling thread is known to pjlib (a Python thread dropping the last reference
 * to a port may never have been registered). */
static void ensure_thread_registered()
{
    if (pj_thread_is_registered())
        return;
    try {
        Endpoint::instance().libRegisterThread("AudioMediaPort");
    } catch (...) {
    }
}

AudioMediaPort::AudioMediaPort()
: portPool(NULL), mediaPort(NULL)
{
}

AudioMediaPort::~AudioMediaPort()
{
    destroyPort();
}

void AudioMediaPort::createPort(const string &name, MediaFormatAudio &fmt)
                                PJSUA2_THROW(Error)
{
    if (mediaPort != NULL) {
        PJSUA2_RAISE_ERROR2(PJ_EEXISTS, "AudioMediaPort::createPort()");
    }
    if (pjsua_get_state() < PJSUA_STATE_INIT) {
        PJSUA2_RAISE_ERROR3(PJ_EINVALIDOP, "AudioMediaPort::createPort()",
                            "call Endpoint::libInit() first");
    }
    if (fmt.type != PJMEDIA_TYPE_NONE && fmt.type != PJMEDIA_TYPE_AUDIO) {
        PJSUA2_RAISE_ERROR3(PJ_EINVAL, "AudioMediaPort::createPort()",
                            "format is not audio");
    }
    if (fmt.clockRate == 0 || fmt.channelCount == 0 || fmt.frameTimeUsec == 0 ||
        fmt.bitsPerSample != 16)
    {
        PJSUA2_RAISE_ERROR3(PJ_EINVAL, "AudioMediaPort::createPort()",
                            "need clockRate, channelCount, frameTimeUsec and "
                            "bitsPerSample=16");
    }

    pj_uint64_t samples = (pj_uint64_t)fmt.clockRate * fmt.channelCount *
                          fmt.frameTimeUsec / 1000000;
    if (samples == 0 || samples > 0xFFFF) {
        PJSUA2_RAISE_ERROR3(PJ_EINVAL, "AudioMediaPort::createPort()",
                            "frame length out of range");
    }

    pj_pool_t *pool = pjsua_pool_create("amport%p", 512, 512);
    if (!pool) {
        PJSUA2_RAISE_ERROR2(PJ_ENOMEM, "AudioMediaPort::createPort()");
    }

    pjmedia_port *port = PJ_POOL_ZALLOC_T(pool, pjmedia_port);
    pj_str_t port_name;
    pj_strdup2_with_null(pool, &port_name, name.c_str());
    pj_status_t status = pjmedia_port_info_init(&port->info, &port_name,
                                                SIGNATURE, fmt.clockRate,
                                                fmt.channelCount,
                                                fmt.bitsPerSample,
                                                (unsigned)samples);
    if (status != PJ_SUCCESS) {
        pj_pool_release(pool);
        PJSUA2_RAISE_ERROR2(status, "AudioMediaPort::createPort()");
    }
    port->port_data.pdata = this;
    port->get_frame = &AudioMediaPort::getFrameCb;
    port->put_frame = &AudioMediaPort::putFrameCb;

    portPool = pool;
    mediaPort = port;
    try {
        registerMediaPort2(port, pool);
    } catch (...) {
        mediaPort = NULL;
        portPool = NULL;
        id = PJSUA_INVALID_ID;
        pj_pool_release(pool);
        throw;
    }
}

void AudioMediaPort::destroyPort()
{
    if (mediaPort == NULL)
        return;

    if (pjsua_get_state() == PJSUA_STATE_NULL) {
        /* libDestroy() already ran: the bridge and every pjsua pool (ours included) are gone.
         * Nothing is left to free and no pjlib call is allowed any more. */
        mediaPort = NULL;
        portPool = NULL;
        id = PJSUA_INVALID_ID;
        return;
    }

    ensure_thread_registered();
    try {
        /* Removes the port from the bridge; this waits for a clock tick in progress, after
         * which the bridge never calls our callbacks again. */
        unregisterMediaPort();
    } catch (...) {
        if (id != PJSUA_INVALID_ID) {
            pjsua_conf_remove_port(id);
            id = PJSUA_INVALID_ID;
        }
    }
    mediaPort->port_data.pdata = NULL;
    mediaPort = NULL;
    pj_pool_release(portPool);
    portPool = NULL;
}

void AudioMediaPort::onFrameRequested(MediaFrame &frame)
{
    /* Default: no audio. */
    frame.type = PJMEDIA_FRAME_TYPE_NONE;
}

void AudioMediaPort::onFrameReceived(MediaFrame &frame)
{
    PJ_UNUSED_ARG(frame);
}

pj_status_t AudioMediaPort::getFrameCb(pjmedia_port *port, pjmedia_frame *frame)
{
    AudioMediaPort *self = (AudioMediaPort *)port->port_data.pdata;
    const unsigned wanted = (unsigned)frame->size;

    if (self == NULL || frame->buf == NULL || wanted == 0) {
        frame->type = PJMEDIA_FRAME_TYPE_NONE;
        frame->size = 0;
        return PJ_SUCCESS;
    }

    MediaFrame mf;
    mf.type = PJMEDIA_FRAME_TYPE_AUDIO;
    mf.size = wanted;
    try {
        self->onFrameRequested(mf);
    } catch (...) {
        /* Never let an exception cross into pjmedia's C code. */
        mf.type = PJMEDIA_FRAME_TYPE_NONE;
    }

    if (mf.type != PJMEDIA_FRAME_TYPE_AUDIO || mf.buf.empty()) {
        frame->type = PJMEDIA_FRAME_TYPE_NONE;
        frame->size = 0;
        return PJ_SUCCESS;
    }

    pj_size_t n = mf.buf.size();
    if (mf.size < n)
        n = mf.size;
    if (wanted < n)
        n = wanted;
    if (n > 0)
        pj_memcpy(frame->buf, &mf.buf[0], n);
    if (n < wanted)
        pj_bzero((pj_uint8_t *)frame->buf + n, wanted - n);
    frame->type = PJMEDIA_FRAME_TYPE_AUDIO;
    frame->size = wanted;
    return PJ_SUCCESS;
}

pj_status_t AudioMediaPort::putFrameCb(pjmedia_port *port, pjmedia_frame *frame)
{
    AudioMediaPort *self = (AudioMediaPort *)port->port_data.pdata;

    /* The bridge also sends "heart-beat" frames without audio while nothing transmits to the
     * port: those are not delivered. */
    if (self == NULL || frame->type != PJMEDIA_FRAME_TYPE_AUDIO ||
        frame->buf == NULL || frame->size == 0)
    {
        return PJ_SUCCESS;
    }

    MediaFrame mf;
    mf.type = PJMEDIA_FRAME_TYPE_AUDIO;
    const pj_uint8_t *p = (const pj_uint8_t *)frame->buf;
    mf.buf.assign(p, p + frame->size);
    mf.size = (unsigned)frame->size;
    try {
        self->onFrameReceived(mf);
    } catch (...) {
    }
    return PJ_SUCCESS;
}
