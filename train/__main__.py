from train.train import TrainingDiverged, main
from vitdeblur.hub import CheckpointError

try:
    main()
except (TrainingDiverged, CheckpointError, FileNotFoundError, ValueError) as e:
    raise SystemExit(f"error: {e}") from None
