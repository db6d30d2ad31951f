/*  =========================================================================
    dp_status - `dpool status`: what a broker is doing

    Asks a broker for a REPORT (STATUS needs no session) and prints its
    nodes, workers, jobs and counters as a table, or as JSON with --json.
    =========================================================================
*/
#ifndef DP_STATUS_H_INCLUDED
#define DP_STATUS_H_INCLUDED

//  Run `dpool status`; argv [0] is "status". Returns the exit status: 0,
//  2 (no answer, a bad answer), 64 (usage).
int dp_status_main (int argc, char *argv []);

#endif
