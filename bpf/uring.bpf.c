/* uring.bpf.c - io_uring submissions: what a program does through a ring, which no system-call
 * hook sees.
 *
 * Hooks:
 *   io_uring:io_uring_submit_req   every submitted SQE, with its opcode, in the submitting task
 *       (or the ring's SQPOLL thread, which belongs to the same process). Watched opcodes:
 *       connect, accept, bind, listen, socket; openat/openat2, write/writev (fixed too), send
 *       and sendmsg (zero-copy too), splice, tee, renameat, unlinkat, symlinkat, linkat,
 *       setxattr, ftruncate, uring_cmd. Connects, accepts, binds and listens are sent every
 *       time; every other opcode once per (process, opcode) - a write loop through a ring is
 *       one record, not one per write (counted in uring_seen).
 *   Kill policy KILL_URING_CONNECT: a connect submitted through io_uring gets SIGKILL here,
 *       before io_uring_enter returns: its destination is in the SQE, in memory this probe
 *       cannot read without the kernel's structures, so it is a connect to an unknown
 *       destination and, for a session, one that cannot be allowed.
 * Why: io_uring performs connects, opens and writes with no connect/openat/write system call;
 *   session containers deny io_uring altogether (security.syscalls.deny), host-wide watching
 *   and sessions that allow it get these records.
 * Blind spots: the operation's arguments (address, path, fd, bytes); only the opcode is known.
 */
#include "scope.h"

#define UOP_CONNECT 16
#define UOP_ACCEPT 13
#define UOP_BIND 56
#define UOP_LISTEN 57

/* bit n: opcode n is watched (opcodes below 64) */
#define UOP_BIT(n) (1ULL << (n))
#define UOP_WATCHED (UOP_BIT(2) | UOP_BIT(5) | UOP_BIT(9) | UOP_BIT(13) | UOP_BIT(16) |       \
                     UOP_BIT(18) | UOP_BIT(23) | UOP_BIT(26) | UOP_BIT(28) | UOP_BIT(30) |     \
                     UOP_BIT(33) | UOP_BIT(35) | UOP_BIT(36) | UOP_BIT(38) | UOP_BIT(39) |     \
                     UOP_BIT(41) | UOP_BIT(42) | UOP_BIT(45) | UOP_BIT(46) | UOP_BIT(47) |     \
                     UOP_BIT(48) | UOP_BIT(55) | UOP_BIT(56) | UOP_BIT(57) | UOP_BIT(61))
#define UOP_ALWAYS (UOP_BIT(UOP_CONNECT) | UOP_BIT(UOP_ACCEPT) | UOP_BIT(UOP_BIND) | UOP_BIT(UOP_LISTEN))

/* (tgid, opcode) -> submissions seen (the key's fd is the opcode) */
BPF_TABLE("lru_hash", struct fd_key, __u64, uring_seen, 4096);

#ifdef TP_io_uring__io_uring_submit_req
TRACEPOINT_PROBE(io_uring, io_uring_submit_req)
{
    __u32 op = args->opcode;
    if (op >= 64 || !(UOP_WATCHED & UOP_BIT(op)))
        return 0;
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u32 flags = args->sq_thread ? URING_SQPOLL : 0;
    if (op == UOP_CONNECT && (kill_flags(scope_id) & KILL_URING_CONNECT)) {
        kill_current(KILL_REASON_URING_CONNECT);
        flags |= URING_KILLED;
    }
    if (!(UOP_ALWAYS & UOP_BIT(op))) {
        struct fd_key k = {.tgid = current_tgid(), .fd = (__s32)op};
        __u64 *n = uring_seen.lookup(&k);
        if (n) {
            __sync_fetch_and_add(n, 1);
            return 0;
        }
        __u64 one = 1;
        uring_seen.update(&k, &one);
    }
    struct uring_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_URING, scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_URING, scope_id);
    e->opcode = op;
    e->flags = flags;
    e->user_data = args->user_data;
    e->sqe_flags = args->flags;
    events_hi.ringbuf_submit(e, WAKE_NOW);
    return 0;
}
#endif
