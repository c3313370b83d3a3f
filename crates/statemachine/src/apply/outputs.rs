//! Recording a workflow's exit in the bounded output records (see `crate::output`).

use crate::apply::Context;
use crate::{State, WorkflowOutput, OUTPUT_RECORDS_MAX};

impl State {
    /// Keeps `output` as its workflow's latest exit, then drops the records of the oldest jobs
    /// beyond [`OUTPUT_RECORDS_MAX`].
    pub(crate) fn record_output(&mut self, context: &mut Context<'_>, output: WorkflowOutput) {
        let key = (output.job, output.workflow);
        self.outputs.insert(key, output);
        context.touch_output(key);
        while self.outputs.len() > OUTPUT_RECORDS_MAX {
            let Some((dropped, _)) = self.outputs.pop_first() else {
                break;
            };
            context.touch_output(dropped);
        }
    }
}
