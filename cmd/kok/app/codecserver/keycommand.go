package codecserver

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"kok.dev/internal/codec"
	"kok.dev/internal/tclient"
)

// NewKeyCommand returns `kok codec-key` with its generate and rotate subcommands.
func NewKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "codec-key",
		Short: "Create or rotate the key file that encrypts kok's Temporal payloads",
		Long: `Create or rotate the key file that encrypts kok's Temporal payloads.

Every kok process of one system (kok-manager, every kok-agent, the kok CLI, kok codec-server)
must be given the same file, with --codec-key-file or ` + tclient.EnvCodecKeyFile + `. The file holds
several keys: the active one encrypts, all of them decrypt, so histories written before a
rotation stay readable. Keep it secret and back it up: a payload whose key is lost is gone.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newGenerateCommand(), newRotateCommand())
	return cmd
}

func addFileFlag(cmd *cobra.Command, file *string) {
	cmd.Flags().StringVar(file, "file", os.Getenv(tclient.EnvCodecKeyFile),
		"path of the key file (env "+tclient.EnvCodecKeyFile+")")
}

func requireFile(file string) error {
	if file == "" {
		return fmt.Errorf("--file is required (or set %s)", tclient.EnvCodecKeyFile)
	}
	return nil
}

func newGenerateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "generate",
		Short: "Write a new key file with one random AES-256 key (never overwrites)",
		Example: `  kok codec-key generate --file /etc/kok/codec-keys.json
  kok-manager --codec-key-file /etc/kok/codec-keys.json ...`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFile(file); err != nil {
				return err
			}
			if err := codec.GenerateKeyFile(file); err != nil {
				return err
			}
			keys, err := codec.LoadKeyring(file)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(),
				"wrote %s (mode 0600) with key %s\n"+
					"give it to every kok process with --codec-key-file %s, and to kok codec-server --key-file %s;\n"+
					"back it up: payloads encrypted with a lost key cannot be read again\n",
				file, keys.ActiveKeyID(), file, file)
			return nil
		},
	}
	addFileFlag(cmd, &file)
	return cmd
}

func newRotateCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Add a new random key to a key file and make it the one that encrypts",
		Long: `Add a new random key to a key file and make it the one that encrypts.

The older keys stay in the file so that histories encrypted with them remain readable. Processes
read the file at start: copy the new file everywhere and restart every process that uses it.
Until a process restarts, it keeps encrypting with the old key and cannot read payloads written
with the new one.`,
		Example: `  kok codec-key rotate --file /etc/kok/codec-keys.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFile(file); err != nil {
				return err
			}
			id, err := codec.RotateKeyFile(file)
			if err != nil {
				return err
			}
			keys, err := codec.LoadKeyring(file)
			if err != nil {
				return err
			}
			_, _ = fmt.Fprintf(cmd.OutOrStdout(),
				"added key %s to %s and made it active; it holds %d keys\n"+
					"restart every process that uses the file so that they encrypt with the new key and can read it\n",
				id, file, len(keys.KeyIDs()))
			return nil
		},
	}
	addFileFlag(cmd, &file)
	return cmd
}
