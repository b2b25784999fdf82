package dispatch

import (
	"errors"
	"runtime"
	"sync"

	"github.com/crier-dev/crier/channels"
	"github.com/crier-dev/crier/store"
	"github.com/crier-dev/crier/templates"
)

// planJob is one subscriber × channel on its way from selection through
// rendering to the writer.
type planJob struct {
	nd     store.NewDelivery
	event  string
	locale string
	data   *templates.Data // the recipient's data; nil for a suppressed delivery
	// slot holds the rendered message, shared by every job of a render
	// group; nil for a suppressed delivery. render says this job fills it
	// (the group's first job, or a personal message); the writer reads it
	// only after the batch of the job that filled it is done, which is
	// never later than this job's own batch.
	slot   *renderSlot
	render bool
	own    renderSlot // the slot of a job rendered for itself alone
	// pointer ends the SMS if it must be cut to the channel's segment
	// cap (see smsPointers).
	pointer string
	// followUp is set when the subscriber was selected because an earlier
	// delivery about the incident reached them, not by the audience now.
	followUp bool
}

// renderSlot is one rendered message.
type renderSlot struct {
	r   templates.Rendered
	err error
	// fits are r shortened to a channel's segment cap with a pointer,
	// each made once by the writer (the only goroutine that reads slots
	// after rendering). Recipients of one render group share at most a
	// few pointers (see smsPointers).
	fits []fit
}

// fit is a message cut to max segments, ending with pointer.
type fit struct {
	max     int
	pointer string
	r       templates.Rendered
}

// fitted returns the rendered message within max SMS segments (0: no
// cap): shortened at a word boundary, ending with pointer.
func (s *renderSlot) fitted(max int, pointer string) templates.Rendered {
	if max <= 0 || s.r.Segments <= max || s.r.Encoding == "" {
		return s.r
	}
	for _, f := range s.fits {
		if f.max == max && f.pointer == pointer {
			return f.r
		}
	}
	r := s.r
	r.Text = templates.FitSMS(s.r.Text, max, pointer)
	r.Encoding, r.Segments = templates.SMSSegments(r.Text)
	s.fits = append(s.fits, fit{max: max, pointer: pointer, r: r})
	return r
}

// renderGroup is what the output of a non-personal template can depend on
// (see templates.Set.Personal): recipients who share it get one render.
type renderGroup struct {
	event                 string
	kind                  channels.Kind
	locale, zone, nations string
	since                 int64 // the recipient's previous briefing (briefings only)
	withheld              bool  // sensitive text withheld for this channel
}

// maxRenderGroups bounds the render cache; recipients past it are rendered
// one by one, which is correct, only slower.
const maxRenderGroups = 4096

// planBatch is a run of jobs rendered by one worker; done is closed when
// every job in it has been rendered.
type planBatch struct {
	jobs []planJob
	done chan struct{}
}

// planBatchSize trades hand-off overhead against memory: at most about
// 3 × GOMAXPROCS batches are alive at once, whatever the audience size.
const planBatchSize = 256

var errPlanStopped = errors.New("plan: stopped")

// renderPipeline renders planned deliveries on every core while a single
// writer goroutine takes them, in selection order, and writes them (into
// the one planning transaction). Rendering is most of the CPU time of a
// large plan, and templates.Set is safe for concurrent use; the order is
// kept so the outcome (row ids, the first render error reported) does not
// depend on scheduling.
type renderPipeline struct {
	renderQ chan *planBatch
	writeQ  chan *planBatch
	stop    chan struct{} // closed when the writer fails
	workers sync.WaitGroup
	written chan error
	cur     *planBatch
}

// startPipeline starts the render workers and the writer, which calls
// write for each job in order until one returns an error.
func startPipeline(tmpl *templates.Set, write func(*planJob) error) *renderPipeline {
	n := runtime.GOMAXPROCS(0)
	pl := &renderPipeline{renderQ: make(chan *planBatch, n), writeQ: make(chan *planBatch, 2*n), stop: make(chan struct{}), written: make(chan error, 1)}
	for range n {
		pl.workers.Add(1)
		go func() {
			defer pl.workers.Done()
			for b := range pl.renderQ {
				for i := range b.jobs {
					if j := &b.jobs[i]; j.render {
						j.slot.r, j.slot.err = tmpl.Render(j.event, channels.Kind(j.nd.Kind), j.locale, *j.data)
					}
				}
				close(b.done)
			}
		}()
	}
	go func() {
		var err error
		for b := range pl.writeQ {
			<-b.done
			for i := 0; err == nil && i < len(b.jobs); i++ {
				if err = write(&b.jobs[i]); err != nil {
					close(pl.stop)
				}
			}
		}
		pl.written <- err
	}()
	return pl
}

// add queues one job. It returns false once the writer has failed: the
// caller should stop selecting and call finish.
func (pl *renderPipeline) add(j planJob) bool {
	if pl.cur == nil {
		pl.cur = &planBatch{jobs: make([]planJob, 0, planBatchSize), done: make(chan struct{})}
	}
	pl.cur.jobs = append(pl.cur.jobs, j)
	if jp := &pl.cur.jobs[len(pl.cur.jobs)-1]; jp.render && jp.slot == nil {
		jp.slot = &jp.own // the jobs array is never reallocated: its capacity is the batch size
	}
	if len(pl.cur.jobs) < planBatchSize {
		return true
	}
	return pl.send()
}

// send hands the current batch to the writer (first, so order is kept)
// and to the render workers.
func (pl *renderPipeline) send() bool {
	b := pl.cur
	pl.cur = nil
	select {
	case pl.writeQ <- b:
	case <-pl.stop:
		return false
	}
	pl.renderQ <- b
	return true
}

// finish renders and writes whatever is queued, stops every goroutine and
// returns the writer's error.
func (pl *renderPipeline) finish() error {
	if pl.cur != nil {
		pl.send()
	}
	close(pl.writeQ)
	close(pl.renderQ)
	err := <-pl.written
	pl.workers.Wait()
	return err
}
