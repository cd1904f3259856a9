//! Which worker runs each task. The assignment is a function of the stage
//! and the workers answering, not a random draw, so `EXPLAIN` can say where
//! each task will go (while the same workers answer): a stage of one task
//! that reads no source (a final merge) runs on the coordinator itself, in
//! process; every other stage's tasks go round robin over the live workers,
//! starting at the stage's number so that stages of fewer tasks than
//! workers do not all land on the first. Scans always run on workers: a
//! coordinator is sized for its clients, workers for the sources.

use std::sync::Arc;

use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_distributed::{RouteTasksEvent, RouteTasksEventResponse, RouteTasksHandler};
use url::Url;

use super::progress::{marker_of, stage_boards, table_read_by};
use super::workers::{Workers, unavailable};

/// Where the `tasks` tasks of stage `stage` run, given the `live` workers,
/// the `coordinator`'s own worker URL and whether the stage `scans` a source.
pub fn assign(
    stage: usize,
    tasks: usize,
    scans: bool,
    live: &[Url],
    coordinator: &Url,
) -> Vec<Url> {
    if (tasks == 1 && !scans) || live.is_empty() {
        return vec![coordinator.clone(); tasks];
    }
    (0..tasks)
        .map(|i| live[(stage + i) % live.len()].clone())
        .collect()
}

/// Routes the tasks of a coordinator's stages with [`assign`], and records
/// the routes on the query's stage board.
#[derive(Debug, Clone)]
pub struct TaskRouter {
    workers: Workers,
    coordinator: Url,
}

impl TaskRouter {
    /// A router over `workers` for the coordinator reached at `coordinator`.
    pub fn new(workers: Workers, coordinator: Url) -> Self {
        TaskRouter {
            workers,
            coordinator,
        }
    }

    /// Where the tasks of stage `stage` (whose plan is `plan`) would go now.
    pub fn routes(&self, stage: usize, tasks: usize, plan: &Arc<dyn ExecutionPlan>) -> Vec<Url> {
        assign(
            stage,
            tasks,
            table_read_by(plan).is_some(),
            &self.workers.live(),
            &self.coordinator,
        )
    }
}

impl RouteTasksHandler for TaskRouter {
    fn handle(&self, ev: RouteTasksEvent) -> Option<Result<RouteTasksEventResponse>> {
        let key = marker_of(ev.plan);
        let stage = key.as_ref().map_or(0, |k| k.stage as usize);
        if ev.task_count > 1 && self.workers.live().is_empty() {
            return Some(Err(unavailable(
                "no worker of the cluster answers any more: run the query again (it runs on this node alone while none answers)",
            )));
        }
        let urls = self.routes(stage, ev.task_count, ev.plan);
        if let Some(k) = key
            && let Some(board) = stage_boards().get(&k.query)
        {
            board.route(k.stage, urls.iter().map(Url::to_string).collect());
        }
        Some(Ok(RouteTasksEventResponse::new(urls)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_of_one_task_stay_home_and_the_rest_go_round_robin() {
        let url = |s: &str| Url::parse(s).unwrap();
        let home = url("http://c:1/");
        let live = [url("http://a:1/"), url("http://b:1/"), url("http://d:1/")];
        assert_eq!(assign(3, 1, false, &live, &home), vec![home.clone()]);
        assert_eq!(assign(3, 1, true, &live, &home), vec![live[0].clone()]);
        assert_eq!(
            assign(1, 3, true, &live, &home),
            vec![live[1].clone(), live[2].clone(), live[0].clone()]
        );
        assert_eq!(
            assign(2, 2, false, &live, &home),
            vec![live[2].clone(), live[0].clone()]
        );
        assert_eq!(assign(1, 2, true, &[], &home), vec![home.clone(), home]);
    }
}
