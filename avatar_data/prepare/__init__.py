"""From a raw talking-head video to an HFA-GP dataset folder (EG3D layout), offline.

``python -m avatar_data.prepare VIDEO.mp4 OUT_DIR`` or, from Python::

    from avatar_data.prepare import PrepareOptions, is_video_file, prepare_video
    meta = prepare_video("talk.mp4", "/data/talk", PrepareOptions(fps=25, resolution=512))

Steps: ffmpeg decoding at a fixed fps (`video`), hard-cut detection (`shots`), MediaPipe face tracking
(`tracking`), Savitzky-Golay smoothing (`smoothing`), one person's segments kept (`persons`), EG3D's FFHQ
crop from five landmarks (`alignment`), PnP head pose -> EG3D camera labels (`pose`), landmark-PCA
expression codes (`expression`), MFCC audio features (`avatar_data.audio_features`) and a quality report
(`report`); `core` ties them together. Importing this
package loads numpy/PIL code only; mediapipe and OpenCV are imported when a video is processed.
"""

from avatar_data.prepare.core import PrepareError, PrepareOptions, check_out_dir, is_video_file, prepare_video

__all__ = ["PrepareError", "PrepareOptions", "check_out_dir", "is_video_file", "prepare_video"]
