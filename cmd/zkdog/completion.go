package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// bashCompletion asks zkdog itself for the words that may follow, through
// the flag urfave/cli answers when completion is enabled.
const bashCompletion = `# zkdog bash completion: eval "$(zkdog completion bash)"
_zkdog_complete() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	return 0
}
complete -o bashdefault -o default -F _zkdog_complete zkdog
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "Print the shell completion script: eval \"$(zkdog completion bash)\" in ~/.bashrc.",
		ArgsUsage: "bash",
		Action: func(c *cli.Context) error {
			switch shell := c.Args().First(); shell {
			case "bash", "":
				fmt.Fprint(c.App.Writer, bashCompletion)
				return nil
			default:
				return usagef("no completion for %q; bash is supported (zsh users: autoload bashcompinit first)", shell)
			}
		},
	}
}
