/* proc.bpf.c - process lifecycle: fork and exit, so user space keeps a process table with
 * ancestry without reading /proc after the fact.
 *
 * Hooks:
 *   task:task_newtask            fork/clone in the parent's context, with clone_flags: threads
 *                                (CLONE_THREAD) only get a parents entry, processes get EVT_FORK
 *                                and a copy of the parent's pipe/fifo/pty ends on fds 0-15
 *   syscalls:sys_enter_exit_group, sys_enter_exit   the exit status a process asked for
 *   signal:signal_deliver        a fatal signal taken with the default action (incl. SIGKILL)
 *   sched:sched_process_exit     group_dead: the last thread of the process is gone -> EVT_EXIT
 * Why: task_newtask is the only fork tracepoint that says whether the child is a thread.
 * Blind spots: a process killed by SIGKILL sent before it ever ran in scope; the exit status of
 * a process that dies from a signal is reported as the signal, with exit_code -1.
 */
#include "scope.h"

#define CLONE_THREAD_FLAG 0x00010000ULL
#define CLONE_FILES_FLAG 0x00000400ULL
/* signals whose default action terminates the process */
#define FATAL_DEFAULT_MASK ((1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | \
                            (1u << 7) | (1u << 8) | (1u << 9) | (1u << 10) | (1u << 11) |         \
                            (1u << 12) | (1u << 13) | (1u << 14) | (1u << 15) | (1u << 16) |      \
                            (1u << 24) | (1u << 25) | (1u << 26) | (1u << 27) | (1u << 29) |      \
                            (1u << 30) | (1u << 31))

struct exit_info {
    __s32 code;
    __u32 signal;
    __u32 have_code;
    __u32 pad;
};
BPF_TABLE("lru_hash", __u32, struct exit_info, exit_infos, MAX_PROCS);

#ifdef TP_task__task_newtask
TRACEPOINT_PROBE(task, task_newtask)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    if (args->clone_flags & CLONE_THREAD_FLAG)
        return 0;
    __u32 parent = current_tgid();
    __u32 child = args->pid;
    parents.update(&child, &parent);
    if (args->clone_flags & CLONE_FILES_FLAG) {
        /* the same fd table, not a copy: the child's stdio is the parent's (fd_sharers) */
        __u32 *up = fd_sharers.lookup(&parent);
        __u32 owner = up ? *up : parent;
        fd_sharers.update(&child, &owner);
        __u32 zero = 0;
        __u32 *refs = fd_table_refs.lookup_or_try_init(&owner, &zero);
        if (refs)
            *refs += 1;
    }
    new_fd_gen(child);   /* its inherited fds are found through the parent's entries */
    chan_fork_copy(parent, child);   /* its pipe, fifo and pty ends on low fds: copied now */
    struct fork_event *e;
    if (!(e = reserve_hi(sizeof(*e), EVT_FORK, scope_id)))
        return 0;
    fill_hdr(&e->hdr, EVT_FORK, scope_id);
    e->clone_flags = args->clone_flags;
    e->child_pid = child;
    e->pad = 0;
    events_hi.ringbuf_submit(e, WAKE_LATER);
    return 0;
}
#endif

static __always_inline void note_exit_code(int code)
{
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return;
    __u32 tgid = current_tgid();
    struct exit_info zero = {};
    struct exit_info *x = exit_infos.lookup_or_try_init(&tgid, &zero);
    if (x) {
        x->code = (code & 0xff);
        x->have_code = 1;
    }
}

#ifdef TP_syscalls__sys_enter_exit_group
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
    note_exit_code(args->error_code);
    return 0;
}
#endif

#ifdef TP_syscalls__sys_enter_exit
TRACEPOINT_PROBE(syscalls, sys_enter_exit)
{
    note_exit_code(args->error_code);
    return 0;
}
#endif

#ifdef TP_signal__signal_deliver
TRACEPOINT_PROBE(signal, signal_deliver)
{
    int sig = args->sig;
    if (args->sa_handler != 0 || sig <= 0 || sig >= 32 || !(FATAL_DEFAULT_MASK & (1u << sig)))
        return 0;
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u32 tgid = current_tgid();
    struct exit_info zero = {};
    struct exit_info *x = exit_infos.lookup_or_try_init(&tgid, &zero);
    if (x)
        x->signal = sig;
    return 0;
}
#endif

/* The stdio entries of a process that leaves: gone with it, unless it owns an fd table that
 * sharers still use (fd_sharers): then they stay for them, until the last sharer leaves. */
static __always_inline void stdio_drop(__u32 tgid)
{
    fd_gens.delete(&tgid);
#pragma unroll
    for (int fd = 0; fd <= 2; fd++)
        fd_forget(tgid, fd);
}

static __always_inline void fd_table_exit(__u32 tgid)
{
    __u32 *owner = fd_sharers.lookup(&tgid);
    if (owner) {
        __u32 o = *owner;
        fd_sharers.delete(&tgid);
        /* plain read-modify-write (no fetching atomics on this target): two sharers leaving
         * at the same moment may leave the owner's entries to the LRU */
        __u32 *refs = fd_table_refs.lookup(&o);
        __u32 left = refs ? *refs - 1 : 0;
        if (refs)
            *refs = left;
        if (refs && left == FD_OWNER_GONE) {
            fd_table_refs.delete(&o);       /* the last sharer of a table whose owner left */
            stdio_drop(o);
        }
    }
    __u32 *mine = fd_table_refs.lookup(&tgid);
    if (mine && (*mine & ~FD_OWNER_GONE)) {
        *mine |= FD_OWNER_GONE;
        return;
    }
    if (mine)
        fd_table_refs.delete(&tgid);
    stdio_drop(tgid);
}

#ifdef TP_sched__sched_process_exit
TRACEPOINT_PROBE(sched, sched_process_exit)
{
    if (!args->group_dead)
        return 0;
    __u64 scope_id = 0;
    if (!in_scope(&scope_id))
        return 0;
    __u32 tgid = current_tgid();
    struct exit_info *x = exit_infos.lookup(&tgid);
    struct exit_event *e;
    if ((e = reserve_hi(sizeof(*e), EVT_EXIT, scope_id))) {
        fill_hdr(&e->hdr, EVT_EXIT, scope_id);
        e->exit_code = 0;
        e->signal = 0;
        if (x) {
            e->signal = x->signal;
            e->exit_code = x->have_code ? x->code : (x->signal ? -1 : 0);
        }
        events_hi.ringbuf_submit(e, WAKE_LATER);
    }
    if (x)
        exit_infos.delete(&tgid);
    parents.delete(&tgid);
    struct fd_key cwd = {.tgid = tgid, .fd = -100};   /* the cwd kept by file.bpf.c */
    dir_fds.delete(&cwd);
    fd_table_exit(tgid);
    file_entries_drop(tgid);
    fd_marks.delete(&tgid);
    return 0;
}
#endif
