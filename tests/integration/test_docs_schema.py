"""docs/protocol.md carries exactly the message tables that `troupe schema` prints."""
import os
import subprocess

from harness import BIN, ROOT
from tap import diag, done_testing, ok

doc = open(os.path.join(ROOT, 'docs', 'protocol.md')).read()
begin = doc.index('-->', doc.index('<!-- BEGIN SCHEMA')) + 3
end = doc.index('<!-- END SCHEMA -->')
generated = subprocess.run([BIN, 'schema'], stdout=subprocess.PIPE, check=True).stdout.decode()
same = doc[begin:end].strip() == generated.strip()
ok(same, 'docs/protocol.md matches `troupe schema` (regenerate the section if not)')
if not same:
    diag('run: build/bin/troupe schema, and paste it between the markers')
done_testing()
