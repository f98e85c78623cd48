/* tools/shell_edit.h: bt-shell's interactive loop (tools/shell_edit.c):
 * libedit line editing, persistent history, tab completion of commands,
 * table names and families. */
#ifndef BT_TOOLS_SHELL_EDIT_H
#define BT_TOOLS_SHELL_EDIT_H

#include "shell/commands.h"

/* The history file: $BT_SHELL_HISTORY if set (empty: no history), else
 * $HOME/.bt_shell_history, else none.  Writes it into buf; false if none. */
bool sh_history_path(char *buf, size_t cap);

/* Reads lines with libedit until quit or end of input (Ctrl-D), running each
 * with sh_run_text; c->ask is set to a libedit prompt.  Returns 0. */
int sh_interactive(sh_ctx *c);

#endif
