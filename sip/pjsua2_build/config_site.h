/*
 * pjproject build settings for standin's pjsua2 Python binding (sip/build_pjsua2.sh copies this
 * file to pjlib/include/pj/config_site.h). Audio only, no sound device: standin uses pjsua's
 * null audio device and moves audio in and out through AudioMediaPort.
 */
#define PJMEDIA_HAS_VIDEO                   0

/* The conference bridge and AudioMediaPort frames: 16 kHz, 20 ms (pjsua's defaults). */
#define PJSUA_DEFAULT_CLOCK_RATE            16000
#define PJSUA_DEFAULT_AUDIO_FRAME_PTIME     20

/* Calls at once: pjsua 2.12 defaults to 4 and refuses the rest with 486 whatever max_calls says.
 * Each call costs a conference slot, two RTP ports and a media transport. */
#define PJSUA_MAX_CALLS                     32
#define PJSUA_MAX_ACC                       4
#define PJSUA_MAX_CONF_PORTS                (3 * PJSUA_MAX_CALLS)

/* One socket table (pjlib's ioqueue) serves SIP and RTP; pjlib's default of 64 handles ran out at about
 * 31 calls being set up at once. select() caps it at FD_SETSIZE. The gate (standin_gate.i) keeps refused
 * callers and their connections from holding any of it for long. */
#define PJ_IOQUEUE_MAX_HANDLES              1024

/* A closed socket's slot in that table is kept this long before it is reused (pjlib: 500 ms, against a
 * poller thread still holding it). One thread polls SIP and media here (threadCnt 0), so a short wait is
 * safe; at 500 ms a stranger opening 1,200 TCP connections a second, each closed by the gate, filled
 * the table and the next caller's RTP socket found no slot (500 to the INVITE). */
#define PJ_IOQUEUE_KEY_FREE_DELAY           20

/* RTP and RTCP latch to the address media first comes from and stay there: pjmedia would otherwise
 * follow any third address that sends ten packets in a row, handing it the call's audio. */
#define PJMEDIA_RTP_NAT_PROBATION_CNT       0x7fffffff
#define PJMEDIA_RTCP_NAT_PROBATION_CNT      0x7fffffff
