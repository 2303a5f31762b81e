package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completeFlag is what the completion scripts append to the words typed
// so far, as urfave/cli's own bash completion does.
const completeFlag = "--generate-bash-completion"

// The scripts ask zkdog itself for the words that may follow; zkdog
// answers from its command and flag definitions alone (complete). When it
// answers nothing the shell offers file names.
const bashCompletion = `# zkdog bash completion: eval "$(zkdog completion bash)"
_zkdog_complete() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" ` + completeFlag + ` 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" ` + completeFlag + ` 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	return 0
}
complete -o bashdefault -o default -F _zkdog_complete zkdog
`

const zshCompletion = `#compdef zkdog
# zkdog zsh completion: eval "$(zkdog completion zsh)", or this file as
# _zkdog in a directory of $fpath.
_zkdog() {
	local cur=${words[CURRENT]}
	local -a args opts
	args=("${(@Q)words[1,CURRENT-1]}")
	if [[ "$cur" == -* ]]; then
		opts=("${(@f)$("${args[@]}" "$cur" ` + completeFlag + ` 2>/dev/null)}")
	else
		opts=("${(@f)$("${args[@]}" ` + completeFlag + ` 2>/dev/null)}")
	fi
	opts=(${opts:#})
	if (( ${#opts} )); then
		compadd -a opts
	else
		_files
	fi
}
if [[ "${funcstack[1]}" == "_zkdog" ]]; then
	_zkdog "$@"
else
	compdef _zkdog zkdog
fi
`

const fishCompletion = `# zkdog fish completion: zkdog completion fish | source, or this file as
# zkdog.fish in ~/.config/fish/completions.
function __zkdog_complete
	set -l args (commandline -opc)
	set -e args[1]
	set -l cur (commandline -ct)
	if string match -q -- '-*' $cur
		command zkdog $args $cur ` + completeFlag + ` 2>/dev/null
	else
		command zkdog $args ` + completeFlag + ` 2>/dev/null
	end
end
complete -c zkdog -a '(__zkdog_complete)'
`

var completionScripts = map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "Print the shell completion script: eval \"$(zkdog completion bash)\" in ~/.bashrc (or zsh; zkdog completion fish | source).",
		ArgsUsage: "bash|zsh|fish",
		Action: func(c *cli.Context) error {
			if c.Args().Len() > 1 {
				return usagef("zkdog completion takes one shell, got %q", c.Args().Slice())
			}
			shell := c.Args().First()
			if shell == "" {
				shell = "bash"
			}
			script, ok := completionScripts[shell]
			if !ok {
				return usagef("no completion for %q; give bash, zsh or fish", shell)
			}
			_, err := fmt.Fprint(c.App.Writer, script)
			return err
		},
	}
}

// completionRequest says whether the shell is asking for completions, and
// for the words typed after "zkdog" (the one being completed last, if it
// starts with a dash).
func completionRequest(args []string) ([]string, bool) {
	if len(args) < 2 || args[len(args)-1] != completeFlag {
		return nil, false
	}
	return args[1 : len(args)-1], true
}

// complete prints the words that may come next, from the definitions
// alone: nothing is parsed, connected to or run. After "--" come the
// command's own arguments, which are the shell's to complete.
func complete(w io.Writer, app *cli.App, words []string) {
	var cmd *cli.Command
	for _, word := range words {
		if word == "--" {
			return
		}
		if cmd == nil && !strings.HasPrefix(word, "-") {
			if cmd = app.Command(word); cmd == nil || cmd.Hidden {
				return
			}
		}
	}
	dash := len(words) > 0 && strings.HasPrefix(words[len(words)-1], "-")
	switch {
	case cmd == nil && dash:
		printWords(w, []string{"--help", "--version"})
	case cmd == nil:
		printWords(w, commandNames(app))
	case dash:
		printWords(w, flagWords(cmd))
	case cmd.Name == "completion" && len(words) == 1:
		printWords(w, slices.Sorted(maps.Keys(completionScripts)))
	}
}

func flagWords(cmd *cli.Command) []string {
	words := []string{"--help"}
	for _, f := range cmd.Flags {
		for _, n := range f.Names() {
			if len(n) > 1 {
				words = append(words, "--"+n)
			}
		}
	}
	return words
}

func printWords(w io.Writer, words []string) {
	for _, word := range words {
		fmt.Fprintln(w, word)
	}
}
