/*
 * standin additions to the pjsua2 SWIG interface, for every pjproject source (backported or
 * upstream AudioMediaPort). build_pjsua2.sh includes this file at the end of pjsua2.i.
 *
 * Teardown race: when the last Python reference to an AudioMediaPort subclass goes away, Python
 * starts freeing the object and only then runs the C++ destructor, which removes the port from
 * the conference bridge. A clock tick in between would call onFrameRequested/onFrameReceived on a
 * half-freed Python object. __del__ below runs while the object is still whole: it disconnects
 * the port from every other bridge port first (each disconnect waits for a tick in progress), so
 * the bridge no longer calls into it.
 *
 * Fast frame access: bytes(frame.buf) walks the ByteVector one element at a time (~90 us for a
 * 20 ms / 16 kHz frame). MediaFrame.standinGetBytes() / standinSetBytes(buffer) copy in one go;
 * standinSetBytes takes anything with the buffer protocol (bytes, bytearray, a contiguous numpy
 * int16 array) and also sets size and type (audio).
 */
%feature("nothreadallow") pj::MediaFrame::standinGetBytes;
%feature("nothreadallow") pj::MediaFrame::standinSetBytes;
%extend pj::MediaFrame {
    /** buf[:size] as bytes. */
    PyObject *standinGetBytes() {
        size_t n = $self->buf.size();
        if ($self->size < n)
            n = $self->size;
        return PyBytes_FromStringAndSize(n ? (const char *)&$self->buf[0] : "", (Py_ssize_t)n);
    }

    /** Set buf and size from a buffer, type to audio. */
    PyObject *standinSetBytes(PyObject *data) {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_C_CONTIGUOUS) != 0)
            return NULL;
        const unsigned char *p = (const unsigned char *)view.buf;
        $self->buf.assign(p, p + view.len);
        $self->size = (unsigned)view.len;
        $self->type = PJMEDIA_FRAME_TYPE_AUDIO;
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
}

%extend pj::AudioMediaPort {
    /** Disconnect this port from every bridge port (no further callbacks). */
    void standinDisconnectAll() {
        const int self_id = $self->getPortId();
        if (self_id == PJSUA_INVALID_ID)
            return;
        const pjsua_state state = pjsua_get_state();
        if (state < PJSUA_STATE_INIT || state >= PJSUA_STATE_CLOSING)
            return;
        if (!pj_thread_is_registered()) {
            try {
                pj::Endpoint::instance().libRegisterThread("standin-del");
            } catch (...) {
                return;
            }
        }

        pjsua_conf_port_info info;
        if (pjsua_conf_get_port_info(self_id, &info) != PJ_SUCCESS)
            return;
        for (unsigned i = 0; i < info.listener_cnt; ++i)
            pjsua_conf_disconnect(self_id, info.listeners[i]);

        pjsua_conf_port_id ids[PJSUA_MAX_CONF_PORTS];
        unsigned count = PJSUA_MAX_CONF_PORTS;
        if (pjsua_enum_conf_ports(ids, &count) != PJ_SUCCESS)
            return;
        for (unsigned i = 0; i < count; ++i) {
            pjsua_conf_port_info other;
            if (ids[i] == self_id || pjsua_conf_get_port_info(ids[i], &other) != PJ_SUCCESS)
                continue;
            for (unsigned j = 0; j < other.listener_cnt; ++j) {
                if (other.listeners[j] == self_id) {
                    pjsua_conf_disconnect(ids[i], self_id);
                    break;
                }
            }
        }
    }

%pythoncode %{
    def __del__(self):
        try:
            self.standinDisconnectAll()
        except Exception:
            pass
%}
}

%include "standin_gate.i"
