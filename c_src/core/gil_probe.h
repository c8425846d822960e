/* Whether the GIL is held at this instant, without taking it: a hint, stale as
 * soon as it is read (another thread may take the GIL just after). Used to
 * decide whether a BEAM scheduler may take the GIL for a call that lasts
 * microseconds (c_src/nif/thread_free.cpp) without waiting behind a holder. */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

enum { SB_GIL_FREE = 0, SB_GIL_HELD = 1, SB_GIL_UNKNOWN = 2 };
int sb_gil_probe(void);

#ifdef __cplusplus
}
#endif
