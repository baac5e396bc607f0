/*
 * standin backport of pj::AudioMediaPort (pjproject >= 2.14 API) for older pjsua2 SWIG
 * interfaces. build_pjsua2.sh includes this file from pjsua2.i right after pjsua2/media.hpp,
 * and only when the source tree has no AudioMediaPort of its own.
 */
%{
#include "pjsua2/audio_media_port.hpp"
%}

/* Older symbols.i do not export the frame types that MediaFrame::type takes. */
#ifndef STANDIN_HAVE_PJMEDIA_FRAME_TYPE
typedef enum pjmedia_frame_type
{
  PJMEDIA_FRAME_TYPE_NONE,
  PJMEDIA_FRAME_TYPE_AUDIO,
  PJMEDIA_FRAME_TYPE_EXTENDED,
  PJMEDIA_FRAME_TYPE_VIDEO
} pjmedia_frame_type;
#endif

%template(ByteVector) std::vector<unsigned char>;

/* Python subclasses override the frame callbacks. */
%feature("director") AudioMediaPort;

%include "pjsua2/audio_media_port.hpp"
