"""The search stage: configs and profiles (``config``), training steps (``steps``), the DARTS
epoch (``loop``) and the search methods' hooks (``methods``)."""
