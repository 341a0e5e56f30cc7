/* layout.bpf.c - not a probe: one array map per struct of events.h, so
 * tests/bpf/test_layout.py can compare bcc's view of each struct with the ctypes mirrors. */
#include "events.h"

BPF_ARRAY(layout_event_hdr, struct event_hdr, 1);
BPF_ARRAY(layout_exec_event, struct exec_event, 1);
BPF_ARRAY(layout_fork_event, struct fork_event, 1);
BPF_ARRAY(layout_exit_event, struct exit_event, 1);
BPF_ARRAY(layout_sock_info, struct sock_info, 1);
BPF_ARRAY(layout_connect_event, struct connect_event, 1);
BPF_ARRAY(layout_dup_event, struct dup_event, 1);
BPF_ARRAY(layout_chan_info, struct chan_info, 1);
BPF_ARRAY(layout_chan_event, struct chan_event, 1);
BPF_ARRAY(layout_net_send_event, struct net_send_event, 1);
BPF_ARRAY(layout_file_open_event, struct file_open_event, 1);
BPF_ARRAY(layout_path_event, struct path_event, 1);
BPF_ARRAY(layout_rename_event, struct rename_event, 1);
BPF_ARRAY(layout_priv_event, struct priv_event, 1);
BPF_ARRAY(layout_file_key, struct file_key, 1);
BPF_ARRAY(layout_file_agg, struct file_agg, 1);
BPF_ARRAY(layout_fd_key, struct fd_key, 1);
BPF_ARRAY(layout_net_agg, struct net_agg, 1);
BPF_ARRAY(layout_lpm_path_key, struct lpm_path_key, 1);
BPF_ARRAY(layout_conn_key, struct conn_key, 1);
BPF_ARRAY(layout_conn_agg, struct conn_agg, 1);
BPF_ARRAY(layout_scope_cfg, struct scope_cfg, 1);
BPF_ARRAY(layout_blocked_key, struct blocked_key, 1);
BPF_ARRAY(layout_blocked_port_key, struct blocked_port_key, 1);
BPF_ARRAY(layout_sock_event, struct sock_event, 1);
BPF_ARRAY(layout_uring_event, struct uring_event, 1);
BPF_ARRAY(layout_mmap_event, struct mmap_event, 1);
BPF_ARRAY(layout_utime_event, struct utime_event, 1);
BPF_ARRAY(layout_comm_key, struct comm_key, 1);
