/*
 * StandinGate: a pjsip module that sees every request before pjsua does, and the life of every
 * TCP/TLS connection a peer opens. build_pjsua2.sh compiles it into the pjsua2 module.
 *
 * Requests. Registered just above the transaction layer, so a retransmission or an ACK that belongs to a
 * transaction never reaches it; anything else is put to onRequest() (a SWIG director: Python decides).
 * A non-zero answer is sent statelessly and the request goes no further: a refused INVITE never becomes a
 * pjsua call, so it costs no call slot, no RTP sockets and no dialog. (pjsua 2.12 aborted the process
 * when such a call, offered without SDP, was hung up from onIncomingCall.) A negative answer drops the
 * request without a word; an ACK is never answered.
 *
 * Connections. A connection a peer opens is put to onConnection() when it is up (for TLS, after the
 * handshake). One that is refused, one beyond maxConnections, and one that has not brought a whole SIP
 * message within firstMessageMs are shut down by sweep(), which the SIP thread calls after every poll.
 * Shutting down from inside pjsip's transport callback would free the transport under its caller.
 *
 * Everything here runs on the one thread that polls pjsip (standin's SIP thread): no locks.
 */

%feature("director") StandinGate;
%catches(pj::Error) StandinGate::install;

%{
#include <map>
#include <string>
#include <vector>
%}

%inline %{
class StandinGate {
public:
    StandinGate() {}
    virtual ~StandinGate();

    /** A request no transaction or dialog took yet: 0 lets pjsua have it, 100..699 is the status code
     *  to answer with, a negative value drops it. `source` is "ip:port" or "[v6]:port". */
    virtual int onRequest(const std::string &method, const std::string &source, bool inDialog);

    /** A TCP/TLS connection a peer opened: false closes it. */
    virtual bool onConnection(const std::string &source);

    /** Start seeing requests and connections (after libInit, before libStart). */
    void install(unsigned firstMessageMs, unsigned maxConnections);

    /** Stop (before libDestroy). Idempotent. */
    void uninstall();

    /** Shut down the connections that must go; returns how many were shut down now. */
    unsigned sweep();

    /** Peer-opened TCP/TLS connections alive now. */
    unsigned connections() const;
};
%}

%{
namespace {

struct GateConnection {
    pj_uint32_t opened_ms;
    bool spoke;   /* a whole SIP message arrived on it */
    bool doomed;  /* refused or over the limit: shut down at the next sweep */
    bool closing; /* shutdown already asked for */
};

StandinGate *g_gate = nullptr;
unsigned g_first_message_ms = 10000;
unsigned g_max_connections = 64;
pjsip_tp_state_callback g_previous_state_cb = nullptr;
std::map<pjsip_transport *, GateConnection> g_connections;

pj_uint32_t gate_now_ms()
{
    pj_time_val now;
    pj_gettickcount(&now);
    return (pj_uint32_t)PJ_TIME_VAL_MSEC(now);
}

std::string gate_address(const pj_sockaddr *addr)
{
    char text[PJ_INET6_ADDRSTRLEN + 10];
    pj_sockaddr_print(addr, text, sizeof(text), 3);
    return std::string(text);
}

std::string gate_source(const pjsip_rx_data *rdata)
{
    const char *host = rdata->pkt_info.src_name;
    const bool v6 = std::string(host).find(':') != std::string::npos;
    return (v6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" +
           std::to_string(rdata->pkt_info.src_port);
}

bool gate_is_peer_connection(const pjsip_transport *tp)
{
    return tp->dir == PJSIP_TP_DIR_INCOMING && (tp->flag & PJSIP_TRANSPORT_RELIABLE);
}

void gate_heard(const pjsip_rx_data *rdata)
{
    auto found = g_connections.find(rdata->tp_info.transport);
    if (found != g_connections.end())
        found->second.spoke = true;
}

pj_bool_t gate_on_rx_request(pjsip_rx_data *rdata)
{
    if (g_gate == nullptr)
        return PJ_FALSE;
    gate_heard(rdata);
    const pjsip_method &method = rdata->msg_info.msg->line.req.method;
    const std::string name(method.name.ptr, method.name.slen);
    const bool in_dialog = rdata->msg_info.to != nullptr && rdata->msg_info.to->tag.slen > 0;
    int code = 0;
    try {
        code = g_gate->onRequest(name, gate_source(rdata), in_dialog);
    } catch (...) {
        code = 0; /* Python failed to decide: pjsua's own handling (onIncomingCall) still checks */
    }
    if (code == 0)
        return PJ_FALSE;
    if (code > 0 && method.id != PJSIP_ACK_METHOD && code >= 100 && code <= 699)
        pjsip_endpt_respond_stateless(pjsua_get_pjsip_endpt(), rdata, code, nullptr, nullptr, nullptr);
    return PJ_TRUE;
}

pj_bool_t gate_on_rx_response(pjsip_rx_data *rdata)
{
    if (g_gate != nullptr)
        gate_heard(rdata);
    return PJ_FALSE;
}

pjsip_module g_gate_module = {
    nullptr, nullptr,                           /* prev, next */
    {const_cast<char *>("mod-standin-gate"), 16}, /* name */
    -1,                                         /* id */
    PJSIP_MOD_PRIORITY_TSX_LAYER + 1,           /* after transactions, before dialogs and pjsua */
    nullptr, nullptr, nullptr, nullptr,         /* load, start, stop, unload */
    &gate_on_rx_request,
    &gate_on_rx_response,
    nullptr, nullptr,                           /* on_tx_request, on_tx_response */
    nullptr,                                    /* on_tsx_state */
};

void gate_on_transport_state(pjsip_transport *tp, pjsip_transport_state state,
                             const pjsip_transport_state_info *info)
{
    if (g_gate != nullptr && gate_is_peer_connection(tp)) {
        if (state == PJSIP_TP_STATE_CONNECTED && g_connections.find(tp) == g_connections.end()) {
            bool allowed = false;
            try {
                allowed = g_gate->onConnection(gate_address(&tp->key.rem_addr));
            } catch (...) {
                allowed = false;
            }
            const bool over = g_connections.size() >= g_max_connections;
            g_connections[tp] = GateConnection{gate_now_ms(), false, !allowed || over, false};
        } else if (state == PJSIP_TP_STATE_DESTROY) {
            g_connections.erase(tp);
        }
    }
    if (g_previous_state_cb != nullptr)
        g_previous_state_cb(tp, state, info);
}

} // namespace

StandinGate::~StandinGate()
{
    uninstall();
}

int StandinGate::onRequest(const std::string &, const std::string &, bool)
{
    return 0;
}

bool StandinGate::onConnection(const std::string &)
{
    return true;
}

void StandinGate::install(unsigned firstMessageMs, unsigned maxConnections)
{
    if (g_gate == this)
        return;
    if (g_gate != nullptr)
        throw pj::Error(PJ_EEXISTS, "StandinGate::install()", "another gate is installed", __FILE__, __LINE__);
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    if (endpt == nullptr)
        throw pj::Error(PJ_EINVALIDOP, "StandinGate::install()", "call it after libInit()", __FILE__, __LINE__);
    pj_status_t status = pjsip_endpt_register_module(endpt, &g_gate_module);
    if (status != PJ_SUCCESS)
        throw pj::Error(status, "StandinGate::install()", "cannot register the module", __FILE__, __LINE__);
    pjsip_tpmgr *tpmgr = pjsip_endpt_get_tpmgr(endpt);
    g_previous_state_cb = pjsip_tpmgr_get_state_cb(tpmgr);
    pjsip_tpmgr_set_state_cb(tpmgr, &gate_on_transport_state);
    g_first_message_ms = firstMessageMs;
    g_max_connections = maxConnections;
    g_gate = this;
}

void StandinGate::uninstall()
{
    if (g_gate != this)
        return;
    g_gate = nullptr;
    g_connections.clear();
    pjsip_endpoint *endpt = pjsua_get_pjsip_endpt();
    if (endpt == nullptr)
        return;
    pjsip_tpmgr *tpmgr = pjsip_endpt_get_tpmgr(endpt);
    if (pjsip_tpmgr_get_state_cb(tpmgr) == &gate_on_transport_state)
        pjsip_tpmgr_set_state_cb(tpmgr, g_previous_state_cb);
    g_previous_state_cb = nullptr;
    if (g_gate_module.id != -1)
        pjsip_endpt_unregister_module(endpt, &g_gate_module);
}

unsigned StandinGate::sweep()
{
    if (g_gate != this || g_connections.empty())
        return 0;
    const pj_uint32_t now = gate_now_ms();
    std::vector<pjsip_transport *> going;
    for (auto &entry : g_connections) {
        GateConnection &c = entry.second;
        if (c.closing)
            continue;
        if (c.doomed || (!c.spoke && now - c.opened_ms >= g_first_message_ms)) {
            c.closing = true;
            going.push_back(entry.first);
        }
    }
    /* each is still registered: a transport leaves the map only on its DESTROY notice */
    for (pjsip_transport *tp : going)
        pjsip_transport_shutdown(tp);
    return (unsigned)going.size();
}

unsigned StandinGate::connections() const
{
    return g_gate == this ? (unsigned)g_connections.size() : 0;
}
%}
