"""What the Flex Template launcher runs (FLEX_TEMPLATE_PYTHON_PY_FILE): `tokenmill rebuild` with the template's parameters."""

import sys

from deploy.template import launch_template

if __name__ == "__main__":
    sys.exit(launch_template(sys.argv[1:]))
