# Copyright (c) kubecert contributors
# SPDX-License-Identifier: Apache-2.0
"""Attribute blocks for kubecert.pki modules."""


class ModuleDocFragment(object):

    # For modules that can change the node.
    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check mode and return a changed status prediction without modifying the node.
  diff_mode:
    description: Returns details on what changed (or would change in check mode) when in diff mode.
  platform:
    description: Target OS families the module runs on.
    support: full
    platforms: posix
  action_group:
    description: Use C(group/kubecert.pki.kubecert) in C(module_defaults) to set the agent options of all kubecert.pki modules at once.
    support: full
    membership:
      - kubecert.pki.kubecert
'''

    # For modules that only read.
    INFO_MODULE = r'''
options: {}
attributes:
  check_mode:
    support: full
    details:
      - This action does not modify state.
  diff_mode:
    support: N/A
    details:
      - This action does not modify state.
'''
