#!/usr/bin/env bash
# Regenerates the sample media in this folder with FFmpeg (H.264 via libx264, small sizes).
# Every video shows a burned-in clock, so a person can tell which second a frame shows:
#   top left "t = 00:00:03.500" (the frame's presentation time), centre the whole second, large.
# The clock is drawn with the drawtext filter (FFmpeg built with libfreetype, and a TrueType font).
# Where drawtext or a font is missing, the videos fall back to FFmpeg's "testsrc" pattern, which
# prints its own counter (the whole seconds since the start) on the right of the picture.
#
# Usage: bash sample_media/make_samples.sh   (from anywhere; writes next to this script)
set -euo pipefail
cd "$(dirname "$0")"

command -v ffmpeg >/dev/null || { echo "make_samples.sh: ffmpeg is needed" >&2; exit 1; }
FF=(ffmpeg -v error -nostdin -y)

FONT=""
for f in /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf \
         "$(fc-match -f '%{file}' 'DejaVu Sans:bold' 2>/dev/null || true)" \
         "$(fc-match -f '%{file}' sans 2>/dev/null || true)"; do
    if [ -n "$f" ] && [ -f "$f" ]; then FONT="$f"; break; fi
done
FILTERS=$(ffmpeg -hide_banner -filters 2>/dev/null || true)
if [ -n "$FONT" ] && [[ "$FILTERS" == *" drawtext "* ]]; then
    CLOCK=1
else
    CLOCK=0
    echo "make_samples.sh: drawtext or a font is missing: using testsrc's own counter" >&2
fi

# graph W H FPS SECONDS LABEL: a lavfi video source with the clock on it.
graph() {
    local w=$1 h=$2 fps=$3 secs=$4 label=$5
    if [ "$CLOCK" = 1 ]; then
        local side=$((w < h ? w : h))
        local big=$((side / 3)) small=$((side / 14))
        printf '%s' "color=c=0x1d3557:s=${w}x${h}:r=${fps}:d=${secs},"\
"drawbox=x='mod(t*${w}/4,${w}-${small})':y=ih-${small}*3:w=${small}:h=${small}:color=0xe63946:t=fill,"\
"drawtext=fontfile=${FONT}:text='t =%{pts\\:hms}':fontsize=${small}:fontcolor=white:x=${small}/2:y=${small}/2,"\
"drawtext=fontfile=${FONT}:text='%{eif\\:t\\:d}':fontsize=${big}:fontcolor=0xf1faee:x=(w-tw)/2:y=(h-th)/2,"\
"drawtext=fontfile=${FONT}:text='${label}':fontsize=${small}:fontcolor=0xa8dadc:x=${small}/2:y=h-${small}*1.5"
    else
        printf '%s' "testsrc=s=${w}x${h}:r=${fps}:d=${secs}"
    fi
}

X264=(-c:v libx264 -preset slow -crf 30 -pix_fmt yuv420p -g 60 -movflags +faststart)

# landscape.mp4: 640x360, 30 fps, 12 s.
"${FF[@]}" -f lavfi -i "$(graph 640 360 30 12 'landscape 640x360 30 fps')" "${X264[@]}" landscape.mp4

# portrait_rotated.mp4: stored as 640x360 with a 90-degree display matrix, so players and
# decoders show it upright as 360x640. The picture is drawn portrait, turned clockwise to store
# it, and the metadata turns it back. (FFmpeg 5.1 writes the "rotate" tag as a display matrix
# only when the stream is copied, hence the second step.)
"${FF[@]}" -f lavfi -i "$(graph 360 640 30 8 'portrait 360x640'),transpose=clock" \
    "${X264[@]}" portrait_rotated.tmp.mp4
"${FF[@]}" -i portrait_rotated.tmp.mp4 -c copy -metadata:s:v:0 rotate=90 -movflags +faststart \
    portrait_rotated.mp4
rm -f portrait_rotated.tmp.mp4

# with_audio.mp4: 480x270, 25 fps, 8 s, with a 440 Hz tone that beeps (880 Hz) every second.
"${FF[@]}" -f lavfi -i "$(graph 480 270 25 8 'with audio, a beep every second')" \
    -f lavfi -i "sine=frequency=440:beep_factor=2:sample_rate=22050:duration=8" \
    "${X264[@]}" -c:a aac -b:a 32k -shortest with_audio.mp4

# still.png: the frame of landscape.mp4 shown at 5.5 s (its clock reads 00:00:05.500).
"${FF[@]}" -ss 5.5 -i landscape.mp4 -frames:v 1 still.png

ls -l landscape.mp4 portrait_rotated.mp4 with_audio.mp4 still.png
