/*
 * sluiced's inline mode: NFQUEUE workers on Docker's bridges and on
 * host-network containers, the container map, the event log, the control
 * socket, signals. sluiced.c handles the command line and the offline modes.
 */
#ifndef SL_DAEMON_H
#define SL_DAEMON_H

/* Runs until SIGTERM or SIGINT; SIGHUP reloads the policy (a broken file
 * keeps the running one) and reopens the event log. config: the policy
 * file, or NULL for the built-in one. Returns the exit status. */
int sl_daemon_run(const char *config, int foreground);

#endif
